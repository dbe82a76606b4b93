"""cross_attention: softmax(q k^T * scale) v for LLCD's short-query / long-key attentions.

q (B, H, Nq, Dh), k and v (B, H, Nk, Dh)  ->  (B, H, Nq, Dh), scale default 1/sqrt(Dh).
In LCNet the N = 20..80 label queries attend to T = 2,000-3,400 image tokens, and the image
tokens attend to the N graph nodes; both directions run through this op.

Backends (chosen by `choose_backend` below, on top of lcnet_fast.ops._backend's
LCNET_FAST_BACKEND=auto|cuda|triton|cpp|torch):

  "triton"  FlashAttention-style kernels (lcnet_fast/ops/triton/cross_attention.py), registered
            as the op lcnet_fast::cross_attention (forward, also returns the per-row
            logsumexp) and lcnet_fast::cross_attention_backward (dq, dk, dv). fp16, bf16, fp32
            (fp32 dots in IEEE precision, never TF32), Dh <= 256. dropout_p > 0 runs inside
            the kernels (a Philox mask regenerated in the backward, never stored; the seed
            is drawn from torch's RNG, so torch.manual_seed makes a run repeatable).
  "torch"   cross_attention_reference: F.scaled_dot_product_attention. The test oracle and the
            fallback. There is no C++/CUDA kernel for this op: on CPU `auto` uses this
            reference (SDPA is already a good CPU kernel), so LCNET_FAST_BACKEND=cpp or =cuda
            raises for this op.

`auto` rules, all explicit (see `choose_backend`):
  * CPU tensors -> "torch"; CUDA tensors -> "triton" for fp16/bf16/fp32 (see
    `sdpa_is_faster`), "torch" for float64 (Triton path does not take fp64). The same with
    and without dropout: both backends drop with probability dropout_p and scale by
    1/(1-p), but from different random streams (Philox in the kernels, SDPA's own in torch),
    so a training run's exact numbers depend on the backend, never its expectation.
Inside the Triton path, `choose_num_kv_splits` decides between the plain kernel and split-KV.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lcnet_fast.ops import _backend

OP = "cross_attention"
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HEAD_DIM = 256

# --- split-KV rule: config constants (GPU values to be confirmed by benchmarks/gpu_check.sh) ----
#: The plain forward launches B * H * cdiv(Nq, BLOCK_M) programs. Below this many the GPU is
#: under-filled (an H200 has 132 SMs; ~2 resident programs each), so the keys are split.
SPLIT_KV_MIN_PROGRAMS = 256
#: Each split gets at least this many keys, so a program's loop amortises its q load and the
#: combine pass stays cheap next to the attention itself.
SPLIT_KV_MIN_KEYS_PER_SPLIT = 256
#: Upper bound on splits (bounds the fp32 partial buffers: B*H*splits*Nq*(Dh+1) floats).
SPLIT_KV_MAX_SPLITS = 32
#: Query rows per program of the forward kernel on GPU (the rule counts programs with it; the
#: launcher uses it too, except fp32 with Dh > 64, which takes 32-row blocks to avoid register
#: spills: the rule then sees half the programs there are and splits a little less).
FWD_BLOCK_M_GPU = 64


def choose_num_kv_splits(batch: int, heads: int, nq: int, nk: int,
                         block_m: int = FWD_BLOCK_M_GPU) -> int:
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
    """
    programs = batch * heads * -(-nq // block_m)
    if programs >= SPLIT_KV_MIN_PROGRAMS or programs == 0:
        return 1
    wanted = -(-SPLIT_KV_MIN_PROGRAMS // programs)
    return max(1, min(wanted, nk // SPLIT_KV_MIN_KEYS_PER_SPLIT, SPLIT_KV_MAX_SPLITS))


def sdpa_is_faster(batch: int, heads: int, nq: int, nk: int, head_dim: int,
                   dtype: torch.dtype) -> bool:
    """Whether `auto` on CUDA should hand this shape to F.scaled_dot_product_attention.

    Currently never: `auto` runs the Triton kernels for every CUDA shape they take. The rule is
    set from GPU measurements only: benchmarks/bench_cross_attention.py (run by
    benchmarks/gpu_check.sh) times SDPA against Triton plain and split-KV, fwd and fwd+bwd, at
    the LLCD shapes; shapes where SDPA wins go here as explicit thresholds.
    """
    return False


def _check(q, k, v, scale, dropout_p) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"cross_attention: {name} must be a torch.Tensor, got "
                            f"{type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"cross_attention: {name} must have shape (B, H, N, Dh), got rank "
                             f"{t.dim()} shape {tuple(t.shape)}")
    if q.dtype not in DTYPES:
        raise TypeError(f"cross_attention: q must be one of {DTYPES}, got dtype {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"cross_attention: {name} dtype {t.dtype} must match q dtype "
                            f"{q.dtype}")
        if t.device != q.device:
            raise ValueError(f"cross_attention: {name} is on {t.device} but q is on {q.device}")
    qs, ks, vs = tuple(q.shape), tuple(k.shape), tuple(v.shape)
    for name, s in (("k", ks), ("v", vs)):
        if s[0] != qs[0] or s[1] != qs[1] or s[3] != qs[3]:
            raise ValueError(f"cross_attention: {name} shape {s} must match q shape {qs} in "
                             f"batch, heads and head dim (B, H, _, Dh)")
    if ks[2] != vs[2]:
        raise ValueError(f"cross_attention: k and v must have the same length Nk, got k {ks} "
                         f"and v {vs}")
    if qs[3] > MAX_HEAD_DIM:
        raise ValueError(f"cross_attention: head dim Dh = {qs[3]} (q shape {qs}) exceeds the "
                         f"maximum {MAX_HEAD_DIM}")
    if qs[3] == 0:
        raise ValueError(f"cross_attention: head dim Dh must be >= 1, got q shape {qs}")
    if ks[2] == 0 and q.numel() > 0:
        raise ValueError(f"cross_attention: k and v need at least one key (Nk >= 1), got k "
                         f"shape {ks}")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"cross_attention: scale must be a float or None, got {scale!r}")
        if not math.isfinite(scale):
            raise ValueError(f"cross_attention: scale must be finite, got {scale}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)):
        raise TypeError(f"cross_attention: dropout_p must be a float, got {dropout_p!r}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"cross_attention: dropout_p must be in [0, 1), got {dropout_p}")


def cross_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              scale: float | None = None, dropout_p: float = 0.0,
                              compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """F.scaled_dot_product_attention (the oracle and the fallback). compute_dtype=float64
    gives the high-precision reference the tests measure every backend against; the result is
    then returned in compute_dtype."""
    if compute_dtype is not None:
        q, k, v = q.to(compute_dtype), k.to(compute_dtype), v.to(compute_dtype)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)


@torch.compiler.assume_constant_result
def choose_backend(device_type: str, dtype_name: str) -> str:
    """"triton" or "torch" for these inputs (rules in the module doc). dtype_name: str(dtype).

    Raises BackendUnavailableError when LCNET_FAST_BACKEND forces a backend that cannot run
    them (cpp/cuda: no such kernel for this op; triton: no triton, CPU tensors without
    TRITON_INTERPRET=1, or float64).
    """
    requested = _backend.requested_backend()
    # the dtype rule (float64 -> torch) is _backend's, shared by every op
    triton_reason = _backend.unavailable_reason("triton", OP, device_type, dtype_name)
    if requested == "auto":
        if device_type == "cuda" and triton_reason is None:
            return "triton"
        return "torch"
    if requested in ("cpp", "cuda"):
        raise _backend.BackendUnavailableError(
            f"{_backend.ENV_VAR}={requested} cannot run lcnet_fast::{OP} on {device_type} "
            f"{dtype_name} tensors: there is no C++/CUDA kernel for this op (use triton, or "
            f"torch for any dtype)")
    if requested == "triton" and triton_reason is not None:
        raise _backend.BackendUnavailableError(
            f"{_backend.ENV_VAR}=triton cannot run lcnet_fast::{OP} on {device_type} "
            f"{dtype_name} tensors: {triton_reason}")
    return requested


@torch.compiler.assume_constant_result
def _auto_requested() -> bool:
    return _backend.requested_backend() == "auto"


def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    scale: float | None = None, dropout_p: float = 0.0, *,
                    num_kv_splits: int | None = None) -> torch.Tensor:
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
    if num_kv_splits is not None and (isinstance(num_kv_splits, bool)
                                      or not isinstance(num_kv_splits, int)
                                      or num_kv_splits < 1):
        raise ValueError(f"cross_attention: num_kv_splits must be None or an int >= 1, got "
                         f"{num_kv_splits!r}")
    dh = q.shape[-1]
    scale_f = float(scale) if scale is not None else 1.0 / math.sqrt(dh)
    backend = choose_backend(q.device.type, str(q.dtype))
    if backend == "triton" and _auto_requested() and sdpa_is_faster(
            q.shape[0], q.shape[1], q.shape[2], k.shape[2], dh, q.dtype):
        backend = "torch"
    if backend == "triton":
        from lcnet_fast.ops.triton.cross_attention import cross_attention_triton

        if num_kv_splits is None:
            num_kv_splits = choose_num_kv_splits(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        if dropout_p > 0:
            # a tensor, not a Python int: no host sync, no recompile per seed under
            # torch.compile, and CUDA-graph safe (the draw is part of the captured work)
            seed = torch.randint(2**62, (1,), dtype=torch.int64, device=q.device)
            return cross_attention_triton(q, k, v, scale_f, num_kv_splits, float(dropout_p),
                                          seed)[0]
        return cross_attention_triton(q, k, v, scale_f, num_kv_splits)[0]
    return cross_attention_reference(q, k, v, scale_f, float(dropout_p))
