"""Which implementation of an lcnet_fast op runs: shared by every op.

Backends, in the order `auto` tries them:
  CUDA tensors: "cuda" (csrc/cuda, in lcnet_fast._C), "triton", then "torch"
  CPU tensors:  "cpp" (csrc/cpu, in lcnet_fast._C), then "torch"
"torch" is the pure-PyTorch reference (the test oracle), always available. All backends
agree within the tolerances the tests derive, so `auto` never changes results beyond
float rounding. LCNET_FAST_BACKEND=auto|cuda|triton|cpp|torch forces one; a forced
backend that cannot run raises BackendUnavailableError with the reason.

Rules, in the order unavailable_reason applies them:
  1. the op's own rule, if its module registered one (register_rule): e.g. cross_attention
     has no C++/CUDA kernel (on CPU tensors `auto` runs its torch reference, SDPA);
  2. float64: the C++, CUDA and Triton kernels take float32/float16/bfloat16 only. A call with
     float64 tensors (e.g. after `model.double()`) runs the pure-PyTorch reference under
     `auto`; a kernel backend forced for float64 raises BackendUnavailableError naming the
     dtype;
  3. what is there: the extension and its kernel for the op (cpp, cuda), triton and a device
     it runs on (triton).

The extension lcnet_fast._C is imported on first use (when the op modules are imported).
LCNET_FAST_NO_EXTENSION=1 in the environment at that moment keeps it from being loaded at all
(as setup.py does not build it under that variable): every op then runs without it (`auto`
picks torch on CPU tensors) and build_info() says why.

The choice is made on every call (nothing about it is cached: only the probes of the extension,
triton and CUDA are, which cannot change in a process), from LCNET_FAST_BACKEND as it is at
that moment. Under torch.compile it is made at trace time (assume_constant_result): changing
the variable later does not recompile a compiled function.

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
import importlib
import os
from collections.abc import Callable

import torch

from lcnet_fast.errors import BackendUnavailableError

ENV_VAR = "LCNET_FAST_BACKEND"
NO_EXTENSION_ENV_VAR = "LCNET_FAST_NO_EXTENSION"
BACKENDS = ("cuda", "triton", "cpp", "torch")
_AUTO_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpp", "torch")}
#: What the cpp/cuda/triton kernels compute in (as str(dtype), the form choose_backend takes);
#: any other floating dtype (float64) runs the pure-PyTorch reference.
KERNEL_DTYPES = ("torch.float32", "torch.float16", "torch.bfloat16")
BUILD_HINT = "build it with `pip install --no-build-isolation -e .` in the source checkout"


def env_flag(name: str) -> bool:
    """A boolean environment variable, read as setup.py reads its build flags."""
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


@functools.cache
def load_extension():
    """Import lcnet_fast._C once (registers its ops). Returns (module or None, reason): the
    reason is one line saying why the extension is not there and what to do about it."""
    if env_flag(NO_EXTENSION_ENV_VAR):
        return None, (
            f"lcnet_fast._C disabled by {NO_EXTENSION_ENV_VAR}="
            f"{os.environ[NO_EXTENSION_ENV_VAR].strip()} (unset it to load the C++/CUDA "
            "kernels)"
        )
    try:
        # import_module, not `from lcnet_fast import _C`: during `import lcnet_fast` the package
        # is partially initialised, and that form reports a missing _C as a "circular import".
        ext = importlib.import_module("lcnet_fast._C")
    except ImportError as e:  # not built, or built against an incompatible torch/Python
        return None, (f"lcnet_fast._C not built/importable ({_one_line(e)}); {BUILD_HINT}")
    except Exception as e:  # a missing shared library (OSError), a registration clash, ...
        return None, (f"lcnet_fast._C failed to load ({_one_line(e)}); rebuild it: {BUILD_HINT}")
    return ext, None


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


#: A per-op rule: (backend, device_type, dtype_name) -> None if the op allows `backend` on
#: such tensors, else one line saying why not. dtype_name is str(dtype), or None (not known).
OpRule = Callable[[str, str, str | None], str | None]
_OP_RULES: dict[str, OpRule] = {}


def register_rule(op: str, rule: OpRule) -> None:
    """Give lcnet_fast::<op> its own backend rule, applied before the shared ones (module doc).
    Each op module registers its rule once, when it is imported; registering again replaces
    it. A rule may only refuse a backend, never make one available that the shared rules
    refuse."""
    _OP_RULES[op] = rule


def no_kernel_reason(kind: str, dtype_name: str | None, instead: str) -> str:
    """The reason an op rule gives for a backend that has no kernel for the op at all."""
    which = f", in {dtype_name} or any other dtype" if dtype_name else ""
    return f"there is no {kind} kernel for this op{which} ({instead})"


def dtype_unavailable_reason(backend: str, dtype_name: str | None) -> str | None:
    """None if `backend` computes in dtype_name (str(dtype); None: not checked), else why not."""
    if backend == "torch" or dtype_name is None or dtype_name in KERNEL_DTYPES:
        return None
    return (
        f"the {backend} kernels take float32/float16/bfloat16, got {dtype_name} (float64 "
        f"runs the pure-PyTorch reference: LCNET_FAST_BACKEND=auto or torch)"
    )


def unavailable_reason(
    backend: str, op: str, device_type: str, dtype_name: str | None = None
) -> str | None:
    """None if `backend` can run lcnet_fast::<op> on tensors of device_type (and of dtype
    dtype_name, str(dtype), when given), else why not."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend == "torch":
        return None
    rule = _OP_RULES.get(op)
    op_reason = rule(backend, device_type, dtype_name) if rule is not None else None
    if op_reason is not None:
        return op_reason
    dtype_reason = dtype_unavailable_reason(backend, dtype_name)
    if dtype_reason is not None:
        return dtype_reason
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
            return (
                f"lcnet_fast._C was built without CUDA kernels for {op} (rebuild on a GPU "
                "machine or with LCNET_FAST_FORCE_CUDA=1)"
            )
        return None
    if backend == "triton":
        if triton_unavailable_reason():
            return triton_unavailable_reason()
        if device_type == "cuda" or (device_type == "cpu" and triton_interpreter()):
            return None
        return (
            f"the triton backend runs on CUDA tensors (or CPU tensors with "
            f"TRITON_INTERPRET=1), got {device_type} tensors"
        )
    raise AssertionError(backend)


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


def _choose(op: str, device_type: str, requested: str, dtype_name: str | None = None) -> str:
    if requested != "auto":
        reason = unavailable_reason(requested, op, device_type, dtype_name)
        if reason is not None:
            what = f"{device_type} {dtype_name} tensors" if dtype_name else f"{device_type} tensors"
            raise BackendUnavailableError(
                f"{ENV_VAR}={requested} cannot run lcnet_fast::{op} on {what}: {reason}"
            )
        return requested
    for backend in _AUTO_ORDER.get(device_type, ("torch",)):
        if unavailable_reason(backend, op, device_type, dtype_name) is None:
            return backend
    return "torch"


@torch.compiler.assume_constant_result
def choose_backend(op: str, device_type: str, dtype_name: str | None = None) -> str:
    """The backend that runs lcnet_fast::<op> on device_type tensors of dtype dtype_name
    (str(dtype); None: dtype not considered) (see module doc). Raises BackendUnavailableError
    when LCNET_FAST_BACKEND forces a backend that cannot run them."""
    return _choose(op, device_type, requested_backend(), dtype_name)
