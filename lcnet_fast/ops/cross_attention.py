"""cross_attention: softmax(q k^T * scale) v for LLCD's short-query / long-key attentions.

q (B, H, Nq, Dh), k and v (B, H, Nk, Dh)  ->  (B, H, Nq, Dh), scale default 1/sqrt(Dh).
In LCNet the N = 20..80 label queries attend to T = 2,000-3,400 image tokens, and the image
tokens attend to the N graph nodes; both directions run through this op.

Backends (lcnet_fast.ops._backend, LCNET_FAST_BACKEND=auto|cuda|triton|cpp|torch):

  "triton"  FlashAttention-style kernels, as the ops lcnet_fast::cross_attention_triton
            (forward, also returns the per-row logsumexp) and ..._triton_backward (dq, dk, dv)
            defined below, with their fake kernels and autograd; kernels and launchers in
            lcnet_fast/ops/triton/cross_attention*.py. fp16, bf16, fp32 (fp32 dots in IEEE
            precision, never TF32), Dh <= 256. dropout_p > 0 runs inside the kernels (a
            Philox mask regenerated in the backward, never stored; the seed is drawn from
            torch's RNG, so torch.manual_seed makes a run repeatable).
  "torch"   cross_attention_reference: F.scaled_dot_product_attention. The test oracle and the
            fallback.

This op's backend rule (_backend_rule, registered with _backend): there is no C++ or CUDA
kernel, so LCNET_FAST_BACKEND=cpp or =cuda raises, and on CPU tensors `auto` runs the torch
reference (SDPA is already a good CPU kernel). On CUDA tensors `auto` runs triton for
fp16/bf16/fp32 and torch for float64 (_backend's float64 rule). The same with and without
dropout: both backends drop with probability dropout_p and scale by 1/(1-p), but from different
random streams (Philox in the kernels, SDPA's own in torch), so a training run's exact numbers
depend on the backend, never its expectation. Inside the Triton path, `choose_num_kv_splits`
decides between the plain kernel and split-KV.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lcnet_fast.ops import _backend
from lcnet_fast.ops._shapes import (
    ATTENTION_MAX_HEAD_DIM,
    FWD_BLOCK_M_GPU,
    attention_grads,
    attention_outputs,
)

OP = "cross_attention"
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_HEAD_DIM = ATTENTION_MAX_HEAD_DIM

# --- split-KV rule: config constants (GPU values to be confirmed by benchmarks/gpu_check.sh) ----
#: The plain forward launches B * H * cdiv(Nq, BLOCK_M) programs. Below this many the GPU is
#: under-filled (an H200 has 132 SMs; ~2 resident programs each), so the keys are split.
SPLIT_KV_MIN_PROGRAMS = 256
#: Each split gets at least this many keys, so a program's loop amortises its q load and the
#: combine pass stays cheap next to the attention itself.
SPLIT_KV_MIN_KEYS_PER_SPLIT = 256
#: Upper bound on splits (bounds the fp32 partial buffers: B*H*splits*Nq*(Dh+1) floats).
SPLIT_KV_MAX_SPLITS = 32


def choose_num_kv_splits(
    batch: int, heads: int, nq: int, nk: int, block_m: int = FWD_BLOCK_M_GPU
) -> int:
    """How many programs share one query block's keys in the Triton forward (1 = plain kernel).

    Split-KV pays off for short queries and small batches, where the plain kernel's
    B * H * cdiv(Nq, block_m) programs cannot fill the GPU (single-image inference:
    B=1, H=8, Nq=80 is 16 programs). Rule:
      programs = B * H * cdiv(Nq, block_m)
      if programs >= SPLIT_KV_MIN_PROGRAMS: 1 (plain)
      else min(cdiv(SPLIT_KV_MIN_PROGRAMS, programs), Nk // SPLIT_KV_MIN_KEYS_PER_SPLIT,
               SPLIT_KV_MAX_SPLITS), at least 1.
    LLCD training (B=56, H=8, Nq=80 -> 896 programs) stays plain; B=1 inference against
    Nk=1960 keys gets 7 splits. The launcher may lower the count so that no split is empty.
    block_m defaults to the GPU forward's query block (FWD_BLOCK_M_GPU); fp32 at Dh > 64
    launches 32-row blocks instead, so there the rule sees half the programs there are and
    splits a little less.
    """
    programs = batch * heads * -(-nq // block_m)
    if programs >= SPLIT_KV_MIN_PROGRAMS or programs == 0:
        return 1
    wanted = -(-SPLIT_KV_MIN_PROGRAMS // programs)
    return max(1, min(wanted, nk // SPLIT_KV_MIN_KEYS_PER_SPLIT, SPLIT_KV_MAX_SPLITS))


def _check(q, k, v, scale, dropout_p) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"cross_attention: {name} must be a torch.Tensor, got {type(t).__name__}"
            )
        if t.dim() != 4:
            raise ValueError(
                f"cross_attention: {name} must have shape (B, H, N, Dh), got rank "
                f"{t.dim()} shape {tuple(t.shape)}"
            )
    if q.dtype not in DTYPES:
        raise TypeError(f"cross_attention: q must be one of {DTYPES}, got dtype {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"cross_attention: {name} dtype {t.dtype} must match q dtype {q.dtype}")
        if t.device != q.device:
            raise ValueError(f"cross_attention: {name} is on {t.device} but q is on {q.device}")
    qs, ks, vs = tuple(q.shape), tuple(k.shape), tuple(v.shape)
    for name, s in (("k", ks), ("v", vs)):
        if s[0] != qs[0] or s[1] != qs[1] or s[3] != qs[3]:
            raise ValueError(
                f"cross_attention: {name} shape {s} must match q shape {qs} in "
                f"batch, heads and head dim (B, H, _, Dh)"
            )
    if ks[2] != vs[2]:
        raise ValueError(
            f"cross_attention: k and v must have the same length Nk, got k {ks} and v {vs}"
        )
    if qs[3] > MAX_HEAD_DIM:
        raise ValueError(
            f"cross_attention: head dim Dh = {qs[3]} (q shape {qs}) exceeds the "
            f"maximum {MAX_HEAD_DIM}"
        )
    if qs[3] == 0:
        raise ValueError(f"cross_attention: head dim Dh must be >= 1, got q shape {qs}")
    if ks[2] == 0 and q.numel() > 0:
        raise ValueError(
            f"cross_attention: k and v need at least one key (Nk >= 1), got k shape {ks}"
        )
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"cross_attention: scale must be a float or None, got {scale!r}")
        if not math.isfinite(scale):
            raise ValueError(f"cross_attention: scale must be finite, got {scale}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)):
        raise TypeError(f"cross_attention: dropout_p must be a float, got {dropout_p!r}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"cross_attention: dropout_p must be in [0, 1), got {dropout_p}")


def cross_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    dropout_p: float = 0.0,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """F.scaled_dot_product_attention (the oracle and the fallback). compute_dtype=float64
    gives the high-precision reference the tests measure every backend against; the result is
    then returned in compute_dtype."""
    if compute_dtype is not None:
        q, k, v = q.to(compute_dtype), k.to(compute_dtype), v.to(compute_dtype)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)


def _backend_rule(backend: str, device_type: str, dtype_name: str | None) -> str | None:
    """Triton kernels only: no C++ kernel (on CPU tensors `auto` runs the torch reference,
    SDPA) and no CUDA one."""
    if backend in ("cpp", "cuda"):
        return _backend.no_kernel_reason(
            "C++/CUDA",
            dtype_name,
            "CPU tensors run the torch reference, SDPA; use triton, or torch for any dtype",
        )
    return None


_backend.register_rule(OP, _backend_rule)


# --- the Triton ops: fake kernels and autograd ----------------------------------------------


@torch.library.triton_op(f"lcnet_fast::{OP}_triton", mutates_args=())
def _triton_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    num_kv_splits: int,
    dropout_p: float = 0.0,
    seed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, H, Nq, Dh), lse fp32 (B, H, Nq)); lse = logsumexp of q k^T * scale per row
    (of the undropped scores). out is a (B, H, Nq, Dh) view of (B, Nq, H, Dh) memory (as
    flash SDPA returns), so out.transpose(1, 2).reshape(B, Nq, H*Dh) is free; lse is
    contiguous.

    num_kv_splits: 1 = plain kernel, n > 1 = split-KV (lowered so no split is empty).
    dropout_p > 0 drops attention probabilities with the Philox mask of `seed` (int64, one
    element, on q's device). Differentiable in q, k, v through out (lse is not
    differentiable)."""
    # imported on first use: Triton reads TRITON_INTERPRET when the kernels are decorated
    from lcnet_fast.ops.triton import cross_attention as kernels

    return kernels.forward(q, k, v, scale, num_kv_splits, dropout_p, seed)


@torch.library.triton_op(f"lcnet_fast::{OP}_triton_backward", mutates_args=())
def _triton_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    dropout_p: float = 0.0,
    seed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) in q's dtype, from dout = dL/d out and the forward's out, lse (and its
    dropout_p and seed, which regenerate the forward's mask). Each is a (B, H, N, Dh) view of
    (B, N, H, Dh) memory (as flash SDPA returns), so dq.transpose(1, 2).reshape(B, N, H*Dh)
    is free."""
    from lcnet_fast.ops.triton import cross_attention as kernels

    return kernels.backward(dout, q, k, v, out, lse, scale, dropout_p, seed)


# Explicit fakes: tracing the launchers would run the Triton interpreter on fake tensors. They
# allocate as the launchers do (lcnet_fast/ops/_shapes.py), so the fake strides are the real ones.
@_triton_forward.register_fake
def _fake_forward(q, k, v, scale, num_kv_splits, dropout_p=0.0, seed=None):
    return attention_outputs(q)


@_triton_backward.register_fake
def _fake_backward(dout, q, k, v, out, lse, scale, dropout_p=0.0, seed=None):
    return attention_grads(q, k, v)


def _setup_context(ctx, inputs, output):
    q, k, v, scale, _, dropout_p, seed = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, seed)
    ctx.scale, ctx.dropout_p = scale, dropout_p
    ctx.mark_non_differentiable(lse)


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, seed = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv = _triton_backward(dout, q, k, v, out, lse, ctx.scale, ctx.dropout_p, seed)
    return dq, dk, dv, None, None, None, None


_triton_forward.register_autograd(_backward, setup_context=_setup_context)


# --- public function -----------------------------------------------------------------------


def cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    dropout_p: float = 0.0,
    *,
    num_kv_splits: int | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale) v with dropout_p on the attention probabilities.

    q: (B, H, Nq, Dh); k, v: (B, H, Nk, Dh), same dtype and device; any strides (e.g. q from
    x.view(B, L, H, Dh).transpose(1, 2)). Dh <= 256, any Nq, Nk >= 1. scale defaults to
    1/sqrt(Dh). Returns a (B, H, Nq, Dh) tensor of q's dtype; differentiable in q, k, v. On
    the Triton path it (and the gradients of q, k, v) is a (B, H, N, Dh) view of (B, N, H, Dh)
    memory, as flash SDPA returns, so out.transpose(1, 2).reshape(B, Nq, H*Dh) is free; the
    torch path returns SDPA's own layout.

    dropout_p drops attention probabilities (after the softmax, kept ones scaled by 1/(1-p)),
    as SDPA does; the Triton path draws its mask from a Philox seed taken from torch's RNG, so
    the mask differs from SDPA's but torch.manual_seed still makes it repeatable. Pass
    dropout_p=0 outside training, as nn.MultiheadAttention does.

    num_kv_splits (Triton path only): None applies `choose_num_kv_splits`; 1 forces the plain
    kernel, n > 1 splits the keys over up to n programs per query block (split-KV), used by
    tests and benchmarks.
    """
    _check(q, k, v, scale, dropout_p)
    if num_kv_splits is not None and (
        isinstance(num_kv_splits, bool) or not isinstance(num_kv_splits, int) or num_kv_splits < 1
    ):
        raise ValueError(
            f"cross_attention: num_kv_splits must be None or an int >= 1, got {num_kv_splits!r}"
        )
    dh = q.shape[-1]
    scale_f = float(scale) if scale is not None else 1.0 / math.sqrt(dh)
    backend = _backend.choose_backend(OP, q.device.type, str(q.dtype))
    if backend == "triton":
        if num_kv_splits is None:
            num_kv_splits = choose_num_kv_splits(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        if dropout_p > 0:
            # a tensor, not a Python int: no host sync, no recompile per seed under
            # torch.compile, and CUDA-graph safe (the draw is part of the captured work)
            seed = torch.randint(2**62, (1,), dtype=torch.int64, device=q.device)
            return _triton_forward(q, k, v, scale_f, num_kv_splits, float(dropout_p), seed)[0]
        return _triton_forward(q, k, v, scale_f, num_kv_splits)[0]
    return cross_attention_reference(q, k, v, scale_f, float(dropout_p))
