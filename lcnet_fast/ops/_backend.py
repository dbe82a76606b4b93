"""Which implementation of an lcnet_fast op runs: shared by every op.

Backends, in the order `auto` tries them:
  CUDA tensors: "cuda" (csrc/cuda, in lcnet_fast._C), "triton", then "torch"
  CPU tensors:  "cpp" (csrc/cpu, in lcnet_fast._C), then "torch"
"torch" is the pure-PyTorch reference (the test oracle), always available. All backends
agree within the tolerances the tests derive, so `auto` never changes results beyond
float rounding. LCNET_FAST_BACKEND=auto|cuda|triton|cpp|torch forces one; a forced
backend that cannot run raises BackendUnavailableError with the reason.

The choice is made once per (op, device type, LCNET_FAST_BACKEND) and, under
torch.compile, at trace time (assume_constant_result): changing the variable later
does not recompile a compiled function.

Export mode: `with lcnet_fast.ops._backend.reference_ops(): ...` (also importable as
lcnet_fast.export.reference_ops) makes every public op function
(crop_views, cross_attention, dropout_add_layer_norm) run its pure-PyTorch reference, as
if LCNET_FAST_BACKEND=torch, for the calls made inside the block (a context variable, so
other threads are not affected). The references are plain aten ops (SDPA, layer_norm, ...),
which torch.onnx, torch.jit.trace and torch.export can export; the custom ops
lcnet_fast::<op> cannot be exported as they are. lcnet_fast.export uses it.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os

import torch

ENV_VAR = "LCNET_FAST_BACKEND"
BACKENDS = ("cuda", "triton", "cpp", "torch")
_AUTO_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpp", "torch")}


class BackendUnavailableError(RuntimeError):
    """A backend was explicitly requested but cannot run the op here."""


@functools.cache
def load_extension():
    """Import lcnet_fast._C once (registers its ops). Returns (module or None, reason)."""
    try:
        from lcnet_fast import _C
    except ImportError as e:  # not built, or built against an incompatible torch
        return None, f"lcnet_fast._C not built: {e}"
    except Exception as e:  # a missing shared library (OSError), a registration clash, ...
        return None, f"lcnet_fast._C failed to load: {type(e).__name__}: {e}"
    return _C, None


def extension_unavailable_reason() -> str | None:
    return load_extension()[1]


@functools.cache
def triton_unavailable_reason() -> str | None:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as e:  # ImportError, or a broken install raising anything else
        return f"triton not importable: {type(e).__name__}: {e}"
    return None


def triton_interpreter() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.cache
def cuda_unavailable_reason() -> str | None:
    if torch.version.cuda is None:
        return "torch is not a CUDA build"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether lcnet_fast::<op> has a kernel for dispatch_key ("CPU", "CUDA")."""
    if load_extension()[0] is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"lcnet_fast::{op}", dispatch_key)
    except RuntimeError:  # op not registered at all
        return False


def unavailable_reason(backend: str, op: str, device_type: str) -> str | None:
    """None if `backend` can run lcnet_fast::<op> on tensors of device_type, else why not."""
    if backend == "torch":
        return None
    if backend == "cpp":
        if device_type != "cpu":
            return f"the cpp backend runs on CPU tensors, got {device_type} tensors"
        if extension_unavailable_reason():
            return extension_unavailable_reason()
        return None if has_kernel(op, "CPU") else f"lcnet_fast._C has no CPU kernel for {op}"
    if backend == "cuda":
        if device_type != "cuda":
            return f"the cuda backend runs on CUDA tensors, got {device_type} tensors"
        if extension_unavailable_reason():
            return extension_unavailable_reason()
        if not has_kernel(op, "CUDA"):
            return (f"lcnet_fast._C was built without CUDA kernels for {op} (rebuild on a GPU "
                    "machine or with LCNET_FAST_FORCE_CUDA=1)")
        return None
    if backend == "triton":
        if triton_unavailable_reason():
            return triton_unavailable_reason()
        if device_type == "cuda" or (device_type == "cpu" and triton_interpreter()):
            return None
        return (f"the triton backend runs on CUDA tensors (or CPU tensors with "
                f"TRITON_INTERPRET=1), got {device_type} tensors")
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


_REFERENCE_OPS = contextvars.ContextVar("lcnet_fast_reference_ops", default=False)


@contextlib.contextmanager
def reference_ops():
    """Inside this block every lcnet_fast op runs its pure-PyTorch reference ("torch"
    backend), whatever LCNET_FAST_BACKEND says: the mode for exporting (ONNX, TorchScript,
    torch.export) a model that calls the ops. Nests; restores the previous mode on exit."""
    token = _REFERENCE_OPS.set(True)
    try:
        yield
    finally:
        _REFERENCE_OPS.reset(token)


def reference_ops_enabled() -> bool:
    """True inside `reference_ops()`."""
    return _REFERENCE_OPS.get()


def requested_backend() -> str:
    if _REFERENCE_OPS.get():
        return "torch"
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value != "auto" and value not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of auto, {', '.join(BACKENDS)}")
    return value


def _choose(op: str, device_type: str, requested: str) -> str:
    if requested != "auto":
        reason = unavailable_reason(requested, op, device_type)
        if reason is not None:
            raise BackendUnavailableError(
                f"{ENV_VAR}={requested} cannot run lcnet_fast::{op} on {device_type} "
                f"tensors: {reason}")
        return requested
    for backend in _AUTO_ORDER.get(device_type, ("torch",)):
        if unavailable_reason(backend, op, device_type) is None:
            return backend
    return "torch"


@torch.compiler.assume_constant_result
def choose_backend(op: str, device_type: str) -> str:
    """The backend that runs lcnet_fast::<op> on device_type tensors (see module doc)."""
    return _choose(op, device_type, requested_backend())
