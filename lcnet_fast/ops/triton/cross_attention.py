"""Launchers of the cross_attention Triton kernels (the ops lcnet_fast::cross_attention_triton
and ..._triton_backward, their fake kernels and autograd are defined in
lcnet_fast/ops/cross_attention.py, which imports this module on first use).

The kernels: cross_attention_fwd.py (forward, split-KV combine, the dropout mask),
cross_attention_bwd.py (delta, dK/dV, dQ), each opening with its design trade-off; their block
sizes: cross_attention_config.py. The launchers check what the kernels assume, allocate the
outputs and launch.

Output layout. out and dq, dk, dv are (B, H, N, Dh) views of (B, N, H, Dh) memory (as flash
SDPA returns its output), allocated by lcnet_fast/ops/_shapes.py for the launchers and the fake
kernels alike, so out.transpose(1, 2).reshape(B, N, H*Dh) -- what an attention layer does
before its output projection -- is free, and so is the same step back for the gradients of
q, k, v that were split from (B, N, H*Dh) projections (dout arrives in that layout too, and
is read by its strides like q, k, v). The kernels write these outputs through (batch, head,
row) strides; the last-dim stride is 1 by construction (an assumption of the stores, which the
launchers check). Address arithmetic: the batch/head part in int64, the row part within one
(batch, head) slice in int32 (as for the inputs), so that extent must stay below 2**31 elements
(_check_int32_rows refuses anything larger before launch). lse (and the backward's delta) are
(B, H, Nq) contiguous fp32; the split-KV partials stay contiguous.
"""

from __future__ import annotations

import torch
import triton
from torch.library import wrap_triton

from lcnet_fast.ops._shapes import ATTENTION_MAX_HEAD_DIM, attention_grads, attention_outputs
from lcnet_fast.ops.triton import cross_attention_config as config
from lcnet_fast.ops.triton.cross_attention_bwd import (
    bwd_delta_kernel,
    bwd_dkdv_kernel,
    bwd_dq_kernel,
)
from lcnet_fast.ops.triton.cross_attention_fwd import LOG2E, combine_kernel, fwd_kernel


def _store_strides(t: torch.Tensor) -> tuple[int, int, int]:
    """(batch, head, row) strides of an output the kernels store to; its last-dim stride must
    be 1 (the stores add offs_d unscaled)."""
    torch._check(
        t.stride(3) == 1, lambda: f"cross_attention: output last-dim stride {t.stride(3)} != 1"
    )
    return t.stride(0), t.stride(1), t.stride(2)


def _check_op_args(q, k, v) -> None:
    """Guards for direct torch.ops calls (the public function checks more, with nicer text)."""
    torch._check(
        q.dim() == 4 and k.dim() == 4 and v.dim() == 4,
        lambda: "cross_attention: q, k, v must be rank 4 (B, H, N, Dh)",
    )
    torch._check(
        k.shape == v.shape
        and k.shape[0] == q.shape[0]
        and k.shape[1] == q.shape[1]
        and k.shape[3] == q.shape[3],
        lambda: (
            f"cross_attention: bad shapes q {tuple(q.shape)} k {tuple(k.shape)} v {tuple(v.shape)}"
        ),
    )
    torch._check(
        q.dtype == k.dtype == v.dtype and q.dtype in (torch.float16, torch.bfloat16, torch.float32),
        lambda: (
            f"cross_attention: q, k, v must share one of fp16/bf16/fp32, got "
            f"{q.dtype} {k.dtype} {v.dtype}"
        ),
    )
    torch._check(
        q.shape[3] <= ATTENTION_MAX_HEAD_DIM,
        lambda: f"cross_attention: Dh {q.shape[3]} > {ATTENTION_MAX_HEAD_DIM}",
    )


def _check_int32_rows(**tensors: torch.Tensor) -> None:
    """The kernels address one (batch, head) slice in int32 (row * row stride + column *
    column stride; the batch and head parts are int64): its extent must stay below 2**31
    elements, or the offsets would wrap and read or write the wrong memory silently."""
    for name, t in tensors.items():
        if t.numel() == 0:
            continue
        extent = sum((t.shape[i] - 1) * abs(t.stride(i)) for i in range(2, t.dim()))
        torch._check(
            extent < 2**31,
            lambda name=name, t=t: (
                f"cross_attention: {name} of shape "
                f"{tuple(t.shape)} and strides {t.stride()} spans more than 2**31 "
                f"elements within one (batch, head) slice, beyond the kernels' int32 "
                f"row offsets"
            ),
        )


def _dropout_args(dropout_p: float, seed: torch.Tensor | None, like: torch.Tensor) -> tuple:
    """(seed pointer, p, DROPOUT) kernel arguments. Without dropout the seed is never read, so
    any tensor serves as the pointer."""
    torch._check(
        0.0 <= dropout_p < 1.0,
        lambda: f"cross_attention: dropout_p must be in [0, 1), got {dropout_p}",
    )
    if dropout_p == 0.0:
        return like, 0.0, False
    torch._check(
        seed is not None
        and seed.dtype == torch.int64
        and seed.numel() == 1
        and seed.device == like.device,
        lambda: (
            "cross_attention: dropout_p > 0 needs seed, an int64 tensor of one "
            "element on q's device"
        ),
    )
    return seed, float(dropout_p), True


def forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    num_kv_splits: int,
    dropout_p: float = 0.0,
    seed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs the op lcnet_fast::cross_attention_triton (defined, with its contract, in
    lcnet_fast/ops/cross_attention.py): returns (out, lse). num_kv_splits: 1 = plain kernel,
    n > 1 = split-KV (lowered so that no split is empty)."""
    _check_op_args(q, k, v)
    seed_arg, p_arg, dropout = _dropout_args(dropout_p, seed, q)
    out, lse = attention_outputs(q)
    b, h, nq, dh = q.shape
    nk = k.shape[2]
    if out.numel() == 0:
        return out, lse
    torch._check(nk > 0, lambda: "cross_attention: k and v need at least one key")
    _check_int32_rows(q=q, k=k, v=v, out=out)
    block_d = config.block_d_for(dh)
    cfg = config.fwd_config(block_d, q.dtype, q.device.type)
    bm, bn = cfg["BLOCK_M"], cfg["BLOCK_N"]
    per_split, splits = config.kv_split_layout(nk, num_kv_splits, bn)
    consts = dict(
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_D=block_d,
        PRECISION=config.precision(q.dtype),
        DROPOUT=dropout,
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
    )
    qk_scale = scale * LOG2E
    in_strides = (*q.stride(), *k.stride(), *v.stride())
    if splits == 1:  # the plain kernel: writes out and lse itself (split stride 0)
        o_dst, l_dst = out, lse
        so, sl = out.stride(), lse.stride()
        o_strides, l_strides = (so[0], so[1], 0, so[2], so[3]), (sl[0], sl[1], 0, sl[2])
    else:  # split-KV: fp32 partials per split, merged by the combine kernel
        o_dst = q.new_empty((b, h, splits, nq, dh), dtype=torch.float32)
        l_dst = q.new_empty((b, h, splits, nq), dtype=torch.float32)
        _check_int32_rows(split_partials=o_dst)
        o_strides, l_strides = o_dst.stride(), l_dst.stride()
    wrap_triton(fwd_kernel)[(b * h, triton.cdiv(nq, bm), splits)](
        q,
        k,
        v,
        o_dst,
        l_dst,
        *in_strides,
        *o_strides,
        *l_strides,
        h,
        nq,
        nk,
        dh,
        per_split,
        qk_scale,
        seed_arg,
        p_arg,
        **consts,
    )
    if splits == 1:
        return out, lse
    wrap_triton(combine_kernel)[(b * h, triton.cdiv(nq, bm))](
        o_dst,
        l_dst,
        out,
        lse,
        *_store_strides(out),
        h,
        nq,
        dh,
        splits,
        BLOCK_M=bm,
        BLOCK_D=block_d,
        num_warps=cfg["num_warps"],
    )
    return out, lse


def backward(
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
    """Runs the op lcnet_fast::cross_attention_triton_backward (defined, with its contract, in
    lcnet_fast/ops/cross_attention.py): returns (dq, dk, dv)."""
    _check_op_args(q, k, v)
    seed_arg, p_arg, dropout = _dropout_args(dropout_p, seed, q)
    dq, dk, dv = attention_grads(q, k, v)
    b, h, nq, dh = q.shape
    nk = k.shape[2]
    if q.numel() == 0 or k.numel() == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    _check_int32_rows(q=q, k=k, v=v, out=out, dout=dout, dq=dq, dk=dk, dv=dv)
    block_d = config.block_d_for(dh)
    cfg = config.bwd_config(block_d, q.dtype, q.device.type)
    own, step = cfg["OWN"], cfg["STEP"]
    launch = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    lse = lse.contiguous()
    delta = torch.empty((b, h, nq), dtype=torch.float32, device=q.device)
    wrap_triton(bwd_delta_kernel)[(b * h, triton.cdiv(nq, own))](
        out,
        dout,
        delta,
        *out.stride(),
        *dout.stride(),
        h,
        nq,
        dh,
        BLOCK_M=own,
        BLOCK_D=block_d,
        num_warps=cfg["num_warps"],
    )
    strides = (*q.stride(), *k.stride(), *v.stride(), *dout.stride())
    common = (h, nq, nk, dh, scale * LOG2E, scale, seed_arg, p_arg)
    prec = config.precision(q.dtype)
    wrap_triton(bwd_dkdv_kernel)[(b * h, triton.cdiv(nk, own))](
        q,
        k,
        v,
        dout,
        lse,
        delta,
        dk,
        dv,
        *strides,
        *_store_strides(dk),
        *_store_strides(dv),
        *common,
        BLOCK_M=step,
        BLOCK_N=own,
        BLOCK_D=block_d,
        PRECISION=prec,
        DROPOUT=dropout,
        **launch,
    )
    wrap_triton(bwd_dq_kernel)[(b * h, triton.cdiv(nq, own))](
        q,
        k,
        v,
        dout,
        lse,
        delta,
        dq,
        *strides,
        *_store_strides(dq),
        *common,
        BLOCK_M=own,
        BLOCK_N=step,
        BLOCK_D=block_d,
        PRECISION=prec,
        DROPOUT=dropout,
        **launch,
    )
    return dq, dk, dv
