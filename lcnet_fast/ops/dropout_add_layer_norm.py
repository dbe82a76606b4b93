"""dropout_add_layer_norm: LayerNorm(dropout(x, p) + residual) over the last dim, fused.

Every AddNorm of the LLCD decoder, eq. (1): AddNorm(DO(a) + b), sometimes with a is b.

    out = layer_norm(x * keep / (1 - p) + residual, (D,), weight, bias, eps)

x, residual: (..., D) float32/float16/bfloat16/float64, same shape and dtype (x may BE
residual); weight, bias: (D,) of x's dtype or float32. Returns (..., D) in x's dtype. Gradients flow
to x, residual, weight and bias (for x is residual they add up, as autograd sums the two
edges into the one tensor).

The dropout keep-mask is drawn HERE, with torch's RNG on `generator` or the global
generator (make_keep_mask), and handed to the kernels. So every backend sees the same mask
and their outputs are comparable element for element, and a seed reproduces a run on any
backend. Trade-off: the mask is materialised (one byte per element, written once, read by
forward and backward) instead of being regenerated in-kernel from a seed + offset, which
would save that traffic (~1/9 of the forward's bytes in bf16) and the separate RNG pass,
but tie every backend to one in-kernel RNG. On CPU the RNG pass is most of the op's time
(for plain F.dropout too), which is why make_keep_mask uses the cheapest torch draw.
training=False or p == 0 makes no mask and draws no random numbers.

Backends (lcnet_fast.ops._backend): "cpp" (csrc/cpu/dropout_add_layer_norm.cpp) through
torch.ops.lcnet_fast.dropout_add_layer_norm / ..._backward, "triton" (the ops
lcnet_fast::dropout_add_layer_norm_triton / ..._triton_backward defined below; kernels and
launchers in lcnet_fast/ops/triton/dropout_add_layer_norm.py), and "torch"
(dropout_add_layer_norm_reference below: the oracle and the fallback, differentiated by
autograd). There is no CUDA kernel: on CUDA tensors `auto` picks triton, and a forced cuda
raises. On CPU tensors `auto` runs cpp only when a mask is drawn (training, p > 0): without one
the kernel fuses just the residual add, and aten's add + layer_norm is faster than it plus the
custom op's autograd glue (BENCHMARKS.md, dropout_add_layer_norm). The fused ops save mean
and rstd (fp32, one per row) plus x, residual and the mask; the backward recomputes the
pre-norm sum from them. Both pairs of ops share one fake kernel and one autograd formula
(below); their outputs are allocated by lcnet_fast/ops/_shapes.py.
float64 (e.g. `model.double()`) always runs the torch reference, in float64: the kernels take
fp32/fp16/bf16 only, `auto` picks torch for float64 and a forced cpp/triton raises.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from lcnet_fast.ops import _backend
from lcnet_fast.ops._shapes import layer_norm_grads, layer_norm_outputs

OP = "dropout_add_layer_norm"
#: what the op accepts; the cpp/triton kernels take KERNEL_DTYPES, float64 runs the reference
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: `auto` on CPU tensors runs the reference when no mask is drawn (module doc, measured rule)
AUTO_CPU_REFERENCE_WITHOUT_MASK = True


def _backend_rule(backend: str, device_type: str, dtype_name: str | None) -> str | None:
    """There is no CUDA kernel for this op: on CUDA tensors the Triton kernels run."""
    if backend == "cuda":
        return _backend.no_kernel_reason("CUDA", dtype_name, "on CUDA tensors auto runs triton")
    return None


_backend.register_rule(OP, _backend_rule)


# --- argument checks ----------------------------------------------------------------------


def _desc(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)} dtype {t.dtype} device {t.device}"


def _check_args(x, residual, weight, bias, p, eps, training) -> None:
    for name, t in (("x", x), ("residual", residual), ("weight", weight), ("bias", bias)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"dropout_add_layer_norm: {name} must be a torch.Tensor, got {type(t).__name__}"
            )
    if x.dtype not in DTYPES:
        raise TypeError(
            f"dropout_add_layer_norm: x must be float32, float16, bfloat16 or "
            f"float64, got {_desc(x)}"
        )
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(
            f"dropout_add_layer_norm: x must have shape (..., D) with D >= 1, got {_desc(x)}"
        )
    d = x.shape[-1]
    if residual.shape != x.shape:
        raise ValueError(
            f"dropout_add_layer_norm: residual must have x's shape "
            f"{tuple(x.shape)}, got {_desc(residual)}"
        )
    if residual.dtype != x.dtype:
        raise TypeError(
            f"dropout_add_layer_norm: residual must have x's dtype {x.dtype}, got {_desc(residual)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t.shape != (d,):
            raise ValueError(
                f"dropout_add_layer_norm: {name} must have shape ({d},) (D = x's "
                f"last dim), got {_desc(t)}"
            )
        if t.dtype not in (x.dtype, torch.float32):
            raise TypeError(
                f"dropout_add_layer_norm: {name} must be {x.dtype} (x's dtype) or "
                f"float32, got {_desc(t)}"
            )
    if bias.dtype != weight.dtype:
        raise TypeError(
            f"dropout_add_layer_norm: bias dtype must equal weight dtype "
            f"{weight.dtype}, got {_desc(bias)}"
        )
    for name, t in (("residual", residual), ("weight", weight), ("bias", bias)):
        if t.device != x.device:
            raise ValueError(
                f"dropout_add_layer_norm: {name} must be on x's device {x.device}, got {_desc(t)}"
            )
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout_add_layer_norm: p must be a float in [0, 1), got {p!r}")
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout_add_layer_norm: p must be in [0, 1), got {p}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not float(eps) >= 0.0:
        raise ValueError(f"dropout_add_layer_norm: eps must be a float >= 0, got {eps!r}")
    if not isinstance(training, bool):
        raise TypeError(f"dropout_add_layer_norm: training must be a bool, got {training!r}")


# --- the reference (oracle and fallback) ---------------------------------------------------


def make_keep_mask(shape, p: float, device, generator: torch.Generator | None = None):
    """bool keep-mask, True with probability 1 - p, drawn from `generator` (default: the
    global RNG of `device`).

    CPU: keep where a uniform 32-bit integer u satisfies u >= ceil(p * 2**32), u being one
    half of a full-range int64 randint word. The draw is most of the op's time on CPU, and it
    is torch's serial per-element loop around mt19937 that costs: rand (and bernoulli_) pay
    it once per element, this randint once per two elements for the same mt19937 work, and
    p's resolution is 2**-32 instead of rand's 2**-24. The in-place random_ would be cheaper
    still, but torch.compile cannot trace it. Timings: BENCHMARKS.md, dropout_add_layer_norm.
    Other devices: one bernoulli_ kernel, 1 byte per element."""
    if torch.device(device).type != "cpu":
        return torch.empty(shape, dtype=torch.bool, device=device).bernoulli_(
            1.0 - p, generator=generator
        )
    n = math.prod(shape)
    # all 64 bits uniform (random64() % (2**64 - 1): a 2**-64 bias on one value)
    words = torch.randint(
        -(2**63), 2**63 - 1, ((n + 1) // 2,), generator=generator, dtype=torch.int64, device=device
    )
    u = words.view(torch.int32)[:n].view(shape)  # uniform on [-2**31, 2**31)
    # u + 2**31 >= ceil(p * 2**32) (clamped: p < 1 but may round to 2**32), in int32
    return u >= min(math.ceil(p * 2**32), 2**32 - 1) - 2**31


def dropout_add_layer_norm_reference(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None = None,
    p: float = 0.0,
    eps: float = 1e-5,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """F.layer_norm(x * mask / (1 - p) + residual) in plain PyTorch (the oracle).

    The dropout is written as F.dropout computes it (x * (mask * 1/(1-p)), the factor
    rounded to x's dtype). compute_dtype=torch.float64 gives the high-precision reference
    the tests measure every backend against; the result is returned in compute_dtype
    (default: x's dtype)."""
    dt = compute_dtype or x.dtype
    h = x.to(dt)
    if mask is not None:
        h = h * (mask.to(dt) * (1.0 / (1.0 - p)))
    h = h + residual.to(dt)
    w, b = weight, bias
    if compute_dtype is not None or (dt == torch.float64 and weight.dtype != dt):
        # (float64 x with float32 weight: F.layer_norm on CPU takes no float64/float32 mix)
        w, b = weight.to(dt), bias.to(dt)
    return F.layer_norm(h, (x.shape[-1],), w, b, eps)


# --- the custom ops: one fake kernel and one autograd formula for cpp and triton ----------


def _setup_context(ctx, inputs, output):
    x, residual, weight, bias, mask, scale, eps = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, residual, weight, mask, mean, rstd)
    ctx.scale = scale


def _make_backward(backward_op):
    """The register_autograd backward for an op whose saved state backward_op consumes."""

    def backward(ctx, grad_out, grad_mean, grad_rstd):
        x, residual, weight, mask, mean, rstd = ctx.saved_tensors
        dx, dres, dw, db = backward_op(grad_out, x, residual, weight, mask, mean, rstd, ctx.scale)
        if mask is None:
            dx = dres
        return dx, dres, dw, db, None, None, None

    return backward


# explicit for the Triton ops too: tracing their launchers would run the interpreter on fakes
def _fake_forward(x, residual, weight, bias, mask, scale, eps):
    return layer_norm_outputs(x)


def _fake_backward(grad_out, x, residual, weight, mask, mean, rstd, scale):
    return layer_norm_grads(x, weight, mask is not None)


if _backend.load_extension()[0] is not None and hasattr(torch.ops.lcnet_fast, OP):
    torch.library.register_fake(f"lcnet_fast::{OP}")(_fake_forward)
    torch.library.register_fake(f"lcnet_fast::{OP}_backward")(_fake_backward)
    torch.library.register_autograd(
        f"lcnet_fast::{OP}",
        _make_backward(torch.ops.lcnet_fast.dropout_add_layer_norm_backward.default),
        setup_context=_setup_context,
    )


@torch.library.triton_op(f"lcnet_fast::{OP}_triton", mutates_args=())
def _triton_forward(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as torch.ops.lcnet_fast.dropout_add_layer_norm (arguments validated by
    dropout_add_layer_norm). Returns (out, mean, rstd)."""
    # imported on first use: Triton reads TRITON_INTERPRET when the kernels are decorated
    from lcnet_fast.ops.triton import dropout_add_layer_norm as kernels

    return kernels.forward(x, residual, weight, bias, mask, scale, eps)


@torch.library.triton_op(f"lcnet_fast::{OP}_triton_backward", mutates_args=())
def _triton_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as torch.ops.lcnet_fast.dropout_add_layer_norm_backward."""
    from lcnet_fast.ops.triton import dropout_add_layer_norm as kernels

    return kernels.backward(grad_out, x, residual, weight, mask, mean, rstd, scale)


_triton_forward.register_fake(_fake_forward)
_triton_backward.register_fake(_fake_backward)
_triton_forward.register_autograd(_make_backward(_triton_backward), setup_context=_setup_context)


# --- public function -----------------------------------------------------------------------


def _autocast_promote(x, residual):
    """Under autocast, x (a matmul's low-precision output) and residual (e.g. an earlier
    LayerNorm's fp32 output) legitimately differ in dtype; eager `dropout(x) + residual`
    would promote, so promote both the same way. Outside autocast a mixture is an error."""
    if (
        isinstance(x, torch.Tensor)
        and isinstance(residual, torch.Tensor)
        and x.dtype != residual.dtype
        and x.dtype in KERNEL_DTYPES
        and residual.dtype in KERNEL_DTYPES
        and torch.is_autocast_enabled(x.device.type)
    ):
        dt = torch.promote_types(x.dtype, residual.dtype)
        return x.to(dt), residual.to(dt)
    return x, residual


def dropout_add_layer_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    p: float,
    eps: float = 1e-5,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """LayerNorm(dropout(x, p) + residual) over the last dim (see module doc).

    x, residual: (..., D), same shape and dtype (float32/float16/bfloat16, or float64, which
    runs the pure-PyTorch reference; may be the same tensor; under autocast differing
    float32/float16/bfloat16 dtypes are promoted, as `x + residual` would).
    weight, bias: (D,), x's dtype or float32. p in [0, 1): drop probability, used only when
    training. generator: the torch.Generator the dropout mask is drawn from (default: the
    global RNG of x's device). Returns (..., D) in x's (promoted) dtype.
    """
    x, residual = _autocast_promote(x, residual)
    _check_args(x, residual, weight, bias, p, eps, training)
    p, eps = float(p), float(eps)
    if training and p > 0.0:
        mask = make_keep_mask(x.shape, p, x.device, generator)
        scale = 1.0 / (1.0 - p)
    else:
        mask, scale = None, 1.0
    backend = _backend.choose_backend(OP, x.device.type, str(x.dtype))
    if (
        backend == "cpp"
        and mask is None
        and AUTO_CPU_REFERENCE_WITHOUT_MASK
        and _backend.requested_backend() == "auto"
    ):
        backend = "torch"  # nothing to drop: aten's add + layer_norm is faster (module doc)
    if backend == "cpp":
        return torch.ops.lcnet_fast.dropout_add_layer_norm(
            x, residual, weight, bias, mask, scale, eps
        )[0]
    if backend == "triton":
        return _triton_forward(x, residual, weight, bias, mask, scale, eps)[0]
    return dropout_add_layer_norm_reference(x, residual, weight, bias, mask, p, eps)
