"""Triton kernels for cross_attention, registered as lcnet_fast::cross_attention (forward:
out and per-row logsumexp) and lcnet_fast::cross_attention_backward (dq, dk, dv).

Design trade-off. FlashAttention-2 scheme: a forward program owns BLOCK_M query rows of one
(batch, head) and streams the keys in BLOCK_N blocks with an online softmax (running max and
sum in fp32, exp2 with the scale folded into log2 units), so the Nq x Nk matrix never exists;
it saves lse = logsumexp of each row's scores for the backward. LLCD's label queries are short
(Nq = 20..80): with B*H small (single-image inference) the plain grid has only a few programs,
so a split-KV forward spreads each query block's keys over several programs, each writing an
fp32 partial (out, lse), and a combine kernel merges them (extra traffic B*H*S*Nq*(Dh+1) floats,
tiny next to reading K and V). The split choice is choose_num_kv_splits in
lcnet_fast/ops/cross_attention.py.

Backward: delta = rowsum(dO * O) first (one small kernel), then one kernel over KV blocks that
accumulates dk and dv in registers while looping over all query blocks, and a SEPARATE dq
kernel over query blocks that loops over all KV blocks (recomputing q k^T). The alternative,
atomically adding dq from the KV-block programs, is worst exactly on this op's main shape:
with Nq = 80 and Nk = 1960 all ~31 KV programs of a head add into the same 80 x Dh rows
(heavy atomic contention), the fp32 dq buffer needs an extra cast pass, and the result is
not deterministic. The recompute costs one extra Nq x Nk x Dh matmul per head, which is small
for these short query sides, and keeps the gradients bit-reproducible.

Dropout (training). dropout_p > 0 drops attention probabilities inside the kernels, as
FlashAttention does: element (b*h, i, j) of the Nq x Nk matrix is kept when Philox
(tl.rand) draws u >= p at counter (b*h * Nq + i) * Nk + j from a seed tensor drawn from
torch's RNG per call. The counter depends only on the element's position, so the forward
(plain or split-KV), both backward kernels and dropout_keep_mask (tests) all see the same
mask without storing it. Kept probabilities are scaled by 1/(1-p); lse and the normaliser l
stay those of the undropped softmax, so out = (P * Z) V with Z = keep/(1-p), and backward
uses dV = (P Z)^T dO, dP = (dO V^T) Z, dS = P (dP - rowsum(dO O)) (rowsum(P dP) =
rowsum(dO O) still holds with the dropped O).

Output layout. out and dq, dk, dv are (B, H, N, Dh) views of (B, N, H, Dh) memory (as flash
SDPA returns its output), allocated by _bhnd_view_of_bnhd for the launchers and the fake
kernels alike, so out.transpose(1, 2).reshape(B, N, H*Dh) -- what an attention layer does
before its output projection -- is free, and so is the same step back for the gradients of
q, k, v that were split from (B, N, H*Dh) projections (dout arrives in that layout too, and
is read by its strides like q, k, v). The kernels write these outputs through (batch, head,
row) strides; the last-dim stride is 1 by construction (an assumption of the stores, which the
launchers check). Address arithmetic: the batch/head part in int64, the row part within one
batch element in int32 (as for the inputs), so N*H*Dh < 2**31 per batch element. lse (and the
backward's delta) are (B, H, Nq) contiguous fp32; the split-KV partials stay contiguous.

Dh is padded to a power of two >= 16 (tl.dot's minimum) with masks, so Dh = 24, 48, 96 work;
Nq and Nk are masked. fp32 dots use IEEE precision (never TF32) so fp32 matches PyTorch's
fp32; fp16/bf16 inputs go to tensor cores with fp32 accumulation, and the probabilities (and
dS) are rounded to the input dtype before their second dot, as in FlashAttention.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

LOG2E = 1.4426950408889634


@triton.jit
def _dropout_keep(seed, bh, rows, cols, NQ, NK, dropout_p):
    """Keep-mask of the attention elements (rows, cols) of head bh (broadcastable 2D index
    blocks): one Philox counter per element, in int64 so B*H*Nq*Nk may exceed 2**31."""
    counter = (bh.to(tl.int64) * NQ + rows.to(tl.int64)) * NK + cols.to(tl.int64)
    return tl.rand(seed, counter) >= dropout_p


@triton.jit
def _fwd_kernel(
    q_ptr,  # (B, H, Nq, Dh), strides sq_*
    k_ptr,  # (B, H, Nk, Dh), strides sk_*
    v_ptr,  # (B, H, Nk, Dh), strides sv_*
    o_ptr,  # (B, H, S, Nq, Dh): the output (S = 1, so_s = 0) or fp32 split partials
    lse_ptr,  # fp32 (B, H, S, Nq): natural-log logsumexp of each row's scaled scores
    sq_b, sq_h, sq_m, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    so_b, so_h, so_s, so_m, so_d,
    sl_b, sl_h, sl_s, sl_m,
    H, NQ, NK, DH,  # ints: heads, query rows, keys, head dim
    KV_PER_SPLIT,  # int: keys per split, a multiple of BLOCK_N (>= NK when S = 1)
    qk_scale,  # float: scale * log2(e)
    seed_ptr,  # int64 (1,): Philox seed (read only when DROPOUT)
    dropout_p,  # float: probability of dropping an attention probability
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,  # next power of two >= max(DH, 16)
    PRECISION: tl.constexpr,  # tl.dot input_precision: "ieee" for fp32
    DROPOUT: tl.constexpr,  # dropout_p > 0
):
    # grid: (B * H, cdiv(Nq, BLOCK_M), S)
    bh = tl.program_id(0)
    pid_m = tl.program_id(1)
    split = tl.program_id(2)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = offs_m < NQ
    d_mask = offs_d < DH
    q = tl.load(q_ptr + b * sq_b + h * sq_h + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
                mask=m_mask[:, None] & d_mask[None, :], other=0.0)  # (BLOCK_M, BLOCK_D)
    k_base = k_ptr + b * sk_b + h * sk_h
    v_base = v_ptr + b * sv_b + h * sv_h
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    start = split * KV_PER_SPLIT
    end = tl.minimum(start + KV_PER_SPLIT, NK)  # every launched split has >= 1 key
    if DROPOUT:
        seed = tl.load(seed_ptr)
    for n0 in range(start, end, BLOCK_N):
        n = n0 + offs_n
        n_mask = n < end
        kt = tl.load(k_base + n[None, :] * sk_n + offs_d[:, None] * sk_d,
                     mask=d_mask[:, None] & n_mask[None, :], other=0.0)  # (BLOCK_D, BLOCK_N)
        s = tl.dot(q, kt, input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), log2
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        vb = tl.load(v_base + n[:, None] * sv_n + offs_d[None, :] * sv_d,
                     mask=n_mask[:, None] & d_mask[None, :], other=0.0)  # (BLOCK_N, BLOCK_D)
        if DROPOUT:  # l_i above sums the undropped p: the softmax normaliser is unchanged
            p = tl.where(_dropout_keep(seed, bh, offs_m[:, None], n[None, :], NQ, NK,
                                       dropout_p), p, 0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(vb.dtype), vb, input_precision=PRECISION)
        m_i = m_new
    if DROPOUT:
        acc = acc * (1.0 / (1.0 - dropout_p))
    out = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * (1.0 / 1.4426950408889634)
    o_off = b * so_b + h * so_h + split * so_s
    tl.store(o_ptr + o_off + offs_m[:, None] * so_m + offs_d[None, :] * so_d,
             out.to(o_ptr.dtype.element_ty), mask=m_mask[:, None] & d_mask[None, :])
    tl.store(lse_ptr + b * sl_b + h * sl_h + split * sl_s + offs_m * sl_m, lse, mask=m_mask)


@triton.jit
def _combine_kernel(
    op_ptr,  # fp32 (B*H, S, Nq, Dh) contiguous: split partial outputs (each normalised)
    lp_ptr,  # fp32 (B*H, S, Nq) contiguous: split partial logsumexps
    o_ptr,  # (B, H, Nq, Dh), strides so_b, so_h, so_m and 1: output
    lse_ptr,  # fp32 (B*H, Nq) contiguous
    so_b, so_h, so_m,
    H, NQ, DH, NUM_SPLITS,  # ints
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # grid: (B * H, cdiv(Nq, BLOCK_M))
    bh = tl.program_id(0).to(tl.int64)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = offs_m < NQ
    mask = m_mask[:, None] & (offs_d[None, :] < DH)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for s in range(NUM_SPLITS):
        row = (bh * NUM_SPLITS + s) * NQ + offs_m  # (BLOCK_M,)
        lse_s = tl.load(lp_ptr + row, mask=m_mask, other=0.0)
        o_s = tl.load(op_ptr + row[:, None] * DH + offs_d[None, :], mask=mask, other=0.0)
        m_new = tl.maximum(m_i, lse_s)
        alpha = tl.exp(m_i - m_new)
        w = tl.exp(lse_s - m_new)
        acc = acc * alpha[:, None] + w[:, None] * o_s
        l_i = l_i * alpha + w
        m_i = m_new
    out = acc / l_i[:, None]
    o_off = (bh // H) * so_b + (bh % H) * so_h  # int64 (bh is)
    tl.store(o_ptr + o_off + offs_m[:, None] * so_m + offs_d[None, :],
             out.to(o_ptr.dtype.element_ty), mask=mask)
    tl.store(lse_ptr + bh * NQ + offs_m, m_i + tl.log(l_i), mask=m_mask)


@triton.jit
def _bwd_delta_kernel(
    o_ptr,  # (B, H, Nq, Dh), strides so_*
    do_ptr,  # (B, H, Nq, Dh), strides sdo_*
    delta_ptr,  # fp32 (B*H, Nq) contiguous: rowsum(dO * O)
    so_b, so_h, so_m, so_d,
    sdo_b, sdo_h, sdo_m, sdo_d,
    H, NQ, DH,  # ints
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    # grid: (B * H, cdiv(Nq, BLOCK_M))
    bh = tl.program_id(0)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = offs_m < NQ
    mask = m_mask[:, None] & (offs_d[None, :] < DH)
    o = tl.load(o_ptr + b * so_b + h * so_h + offs_m[:, None] * so_m + offs_d[None, :] * so_d,
                mask=mask, other=0.0).to(tl.float32)
    do = tl.load(do_ptr + b * sdo_b + h * sdo_h + offs_m[:, None] * sdo_m
                 + offs_d[None, :] * sdo_d, mask=mask, other=0.0).to(tl.float32)
    tl.store(delta_ptr + bh.to(tl.int64) * NQ + offs_m, tl.sum(o * do, 1), mask=m_mask)


@triton.jit
def _bwd_dkdv_kernel(
    q_ptr,  # (B, H, Nq, Dh), strides sq_*
    k_ptr,  # (B, H, Nk, Dh), strides sk_*
    v_ptr,  # (B, H, Nk, Dh), strides sv_*
    do_ptr,  # (B, H, Nq, Dh), strides sdo_*
    lse_ptr,  # fp32 (B*H, Nq) contiguous (natural log)
    delta_ptr,  # fp32 (B*H, Nq) contiguous
    dk_ptr,  # (B, H, Nk, Dh), strides sdk_b, sdk_h, sdk_n and 1
    dv_ptr,  # (B, H, Nk, Dh), strides sdv_b, sdv_h, sdv_n and 1
    sq_b, sq_h, sq_m, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    sdo_b, sdo_h, sdo_m, sdo_d,
    sdk_b, sdk_h, sdk_n,
    sdv_b, sdv_h, sdv_n,
    H, NQ, NK, DH,  # ints
    qk_scale,  # float: scale * log2(e)
    sm_scale,  # float: scale
    seed_ptr,  # int64 (1,): the forward's Philox seed (read only when DROPOUT)
    dropout_p,  # float
    BLOCK_M: tl.constexpr,  # query rows per loop step
    BLOCK_N: tl.constexpr,  # keys per program
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    DROPOUT: tl.constexpr,
):
    # grid: (B * H, cdiv(Nk, BLOCK_N))
    bh = tl.program_id(0)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m0 = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    n_mask = offs_n < NK
    d_mask = offs_d < DH
    nd_mask = n_mask[:, None] & d_mask[None, :]
    kb = tl.load(k_ptr + b * sk_b + h * sk_h + offs_n[:, None] * sk_n + offs_d[None, :] * sk_d,
                 mask=nd_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
    vb = tl.load(v_ptr + b * sv_b + h * sv_h + offs_n[:, None] * sv_n + offs_d[None, :] * sv_d,
                 mask=nd_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
    q_base = q_ptr + b * sq_b + h * sq_h
    do_base = do_ptr + b * sdo_b + h * sdo_h
    row_base = bh.to(tl.int64) * NQ
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    if DROPOUT:
        seed = tl.load(seed_ptr)
        inv_keep = 1.0 / (1.0 - dropout_p)
    for m0 in range(0, NQ, BLOCK_M):
        offs_m = m0 + offs_m0
        m_mask = offs_m < NQ
        md_mask = m_mask[:, None] & d_mask[None, :]
        qb = tl.load(q_base + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
                     mask=md_mask, other=0.0)  # (BLOCK_M, BLOCK_D)
        dob = tl.load(do_base + offs_m[:, None] * sdo_m + offs_d[None, :] * sdo_d,
                      mask=md_mask, other=0.0)  # (BLOCK_M, BLOCK_D)
        lse = tl.load(lse_ptr + row_base + offs_m, mask=m_mask, other=0.0)
        delta = tl.load(delta_ptr + row_base + offs_m, mask=m_mask, other=0.0)
        st = tl.dot(kb, tl.trans(qb), input_precision=PRECISION) * qk_scale  # (BLOCK_N, BLOCK_M)
        pt = tl.math.exp2(st - lse[None, :] * 1.4426950408889634)
        # padded keys (k = 0) would give exp2(-lse): finite in fp32 but may overflow a 16-bit
        # cast; zero them with the padded queries
        pt = tl.where(m_mask[None, :] & n_mask[:, None], pt, 0.0)
        dpt = tl.dot(vb, tl.trans(dob), input_precision=PRECISION)  # (BLOCK_N, BLOCK_M)
        if DROPOUT:  # the forward used P Z: dV = (P Z)^T dO, dP = (dO V^T) Z
            keep = _dropout_keep(seed, bh, offs_m[None, :], offs_n[:, None], NQ, NK, dropout_p)
            dv += tl.dot(tl.where(keep, pt * inv_keep, 0.0).to(dob.dtype), dob,
                         input_precision=PRECISION)
            dpt = tl.where(keep, dpt * inv_keep, 0.0)
        else:
            dv += tl.dot(pt.to(dob.dtype), dob, input_precision=PRECISION)
        dst = pt * (dpt - delta[None, :])
        dk += tl.dot(dst.to(qb.dtype), qb, input_precision=PRECISION)
    dk = dk * sm_scale
    dk_base = dk_ptr + b * sdk_b + h * sdk_h  # int64 offset; the in-block part in int32
    dv_base = dv_ptr + b * sdv_b + h * sdv_h
    tl.store(dk_base + (offs_n[:, None] * sdk_n + offs_d[None, :]),
             dk.to(dk_ptr.dtype.element_ty), mask=nd_mask)
    tl.store(dv_base + (offs_n[:, None] * sdv_n + offs_d[None, :]),
             dv.to(dv_ptr.dtype.element_ty), mask=nd_mask)


@triton.jit
def _bwd_dq_kernel(
    q_ptr,  # (B, H, Nq, Dh), strides sq_*
    k_ptr,  # (B, H, Nk, Dh), strides sk_*
    v_ptr,  # (B, H, Nk, Dh), strides sv_*
    do_ptr,  # (B, H, Nq, Dh), strides sdo_*
    lse_ptr,  # fp32 (B*H, Nq) contiguous (natural log)
    delta_ptr,  # fp32 (B*H, Nq) contiguous
    dq_ptr,  # (B, H, Nq, Dh), strides sdq_b, sdq_h, sdq_m and 1
    sq_b, sq_h, sq_m, sq_d,
    sk_b, sk_h, sk_n, sk_d,
    sv_b, sv_h, sv_n, sv_d,
    sdo_b, sdo_h, sdo_m, sdo_d,
    sdq_b, sdq_h, sdq_m,
    H, NQ, NK, DH,  # ints
    qk_scale,  # float: scale * log2(e)
    sm_scale,  # float: scale
    seed_ptr,  # int64 (1,): the forward's Philox seed (read only when DROPOUT)
    dropout_p,  # float
    BLOCK_M: tl.constexpr,  # query rows per program
    BLOCK_N: tl.constexpr,  # keys per loop step
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    DROPOUT: tl.constexpr,
):
    # grid: (B * H, cdiv(Nq, BLOCK_M))
    bh = tl.program_id(0)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n0 = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = offs_m < NQ
    d_mask = offs_d < DH
    md_mask = m_mask[:, None] & d_mask[None, :]
    qb = tl.load(q_ptr + b * sq_b + h * sq_h + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
                 mask=md_mask, other=0.0)  # (BLOCK_M, BLOCK_D)
    dob = tl.load(do_ptr + b * sdo_b + h * sdo_h + offs_m[:, None] * sdo_m
                  + offs_d[None, :] * sdo_d, mask=md_mask, other=0.0)  # (BLOCK_M, BLOCK_D)
    row = bh.to(tl.int64) * NQ + offs_m
    lse2 = tl.load(lse_ptr + row, mask=m_mask, other=0.0) * 1.4426950408889634
    delta = tl.load(delta_ptr + row, mask=m_mask, other=0.0)
    k_base = k_ptr + b * sk_b + h * sk_h
    v_base = v_ptr + b * sv_b + h * sv_h
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    if DROPOUT:
        seed = tl.load(seed_ptr)
        inv_keep = 1.0 / (1.0 - dropout_p)
    for n0 in range(0, NK, BLOCK_N):
        n = n0 + offs_n0
        n_mask = n < NK
        dn_mask = d_mask[:, None] & n_mask[None, :]
        kt = tl.load(k_base + n[None, :] * sk_n + offs_d[:, None] * sk_d,
                     mask=dn_mask, other=0.0)  # (BLOCK_D, BLOCK_N)
        vt = tl.load(v_base + n[None, :] * sv_n + offs_d[:, None] * sv_d,
                     mask=dn_mask, other=0.0)  # (BLOCK_D, BLOCK_N)
        s = tl.dot(qb, kt, input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        p = tl.math.exp2(s - lse2[:, None])
        p = tl.where(n_mask[None, :], p, 0.0)
        dp = tl.dot(dob, vt, input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        if DROPOUT:
            keep = _dropout_keep(seed, bh, offs_m[:, None], n[None, :], NQ, NK, dropout_p)
            dp = tl.where(keep, dp * inv_keep, 0.0)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(kt.dtype), tl.trans(kt), input_precision=PRECISION)
    dq = dq * sm_scale
    dq_base = dq_ptr + b * sdq_b + h * sdq_h  # int64 offset; the in-block part in int32
    tl.store(dq_base + (offs_m[:, None] * sdq_m + offs_d[None, :]),
             dq.to(dq_ptr.dtype.element_ty), mask=md_mask)


# --- launch configuration --------------------------------------------------------------------

def _block_d(dh: int) -> int:
    return max(16, triton.next_power_of_2(dh))


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # 16-bit dtypes ignore the setting


# GPU launch configurations: chosen so that no kernel spills registers on sm_90 (H200), read
# from ptxas (`cuobjdump --dump-resource-usage` of each kernel compiled by
# tests/ops/sm90_compile.py, triton 3.8, dropout on and off), not yet tuned by timing on a GPU.
# The earlier configurations spilled where it hurts most: the 16-bit forward at Dh 65-128 (the
# LLCD's Dh = 96) kept 248-608 bytes per thread on the stack with 4 warps, none with 8, and the
# fp32 forward (IEEE dots are FMA loops, no tensor cores) kept up to 9 KB per thread.

def _fwd_config(block_d: int, dtype: torch.dtype, device_type: str) -> dict:
    """BLOCK_M, BLOCK_N, num_warps, num_stages of the forward (and combine) kernels."""
    if device_type == "cpu":  # interpreter: small blocks, exercised by small test shapes
        return dict(BLOCK_M=16, BLOCK_N=16, num_warps=1, num_stages=1)
    from lcnet_fast.ops.cross_attention import FWD_BLOCK_M_GPU

    if dtype == torch.float32:
        if block_d <= 64:
            return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=32, num_warps=8, num_stages=2)
        # no 64-row configuration avoids spilling at Dh > 64 in fp32; 32 rows do
        return dict(BLOCK_M=32, BLOCK_N=16, num_warps=8, num_stages=1)
    if block_d <= 64:
        return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=64, num_warps=4, num_stages=3)
    if block_d <= 128:
        return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=64, num_warps=8, num_stages=2)
    return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=16, num_warps=8, num_stages=1)


def _bwd_config(block_d: int, dtype: torch.dtype, device_type: str) -> dict:
    """Blocks of the backward: dkdv programs own BLOCK_N keys and step BLOCK_M queries; dq
    programs own BLOCK_M queries and step BLOCK_N keys (the same two numbers, swapped roles:
    the step side is the small one)."""
    if device_type == "cpu":
        return dict(OWN=16, STEP=16, num_warps=1, num_stages=1)
    wide = dtype == torch.float32
    if block_d <= 64:
        return dict(OWN=64, STEP=32, num_warps=8 if wide else 4, num_stages=2)
    if block_d <= 128:
        return dict(OWN=64 if not wide else 32, STEP=32 if not wide else 16, num_warps=8,
                    num_stages=1)
    return dict(OWN=32, STEP=16, num_warps=8, num_stages=1)


def kv_split_layout(nk: int, num_splits: int, block_n: int) -> tuple[int, int]:
    """(keys per split, number of non-empty splits) for num_splits requested splits."""
    blocks = triton.cdiv(nk, block_n)
    per_split = triton.cdiv(blocks, max(1, min(num_splits, blocks))) * block_n
    return per_split, triton.cdiv(nk, per_split)


def _bhnd_view_of_bnhd(like: torch.Tensor) -> torch.Tensor:
    """A new tensor of like's (B, H, N, Dh) shape, dtype and device: the (B, H, N, Dh) view of
    (B, N, H, Dh) memory, strides (N*H*Dh, Dh, H*Dh, 1), as flash SDPA returns its output.
    The one allocation of out, dq, dk, dv, for the launchers and the fake kernels alike."""
    b, h, n, dh = like.shape
    return like.new_empty((b, n, h, dh)).transpose(1, 2)


def _store_strides(t: torch.Tensor) -> tuple[int, int, int]:
    """(batch, head, row) strides of an output the kernels store to; its last-dim stride must
    be 1 (the stores add offs_d unscaled)."""
    torch._check(t.stride(3) == 1,
                 lambda: f"cross_attention: output last-dim stride {t.stride(3)} != 1")
    return t.stride(0), t.stride(1), t.stride(2)


def _new_outputs(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out: see _bhnd_view_of_bnhd, lse: fp32 (B, H, Nq) contiguous)."""
    b, h, nq, _ = q.shape
    return _bhnd_view_of_bnhd(q), q.new_empty((b, h, nq), dtype=torch.float32)


def _new_grads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(dq, dk, dv) of q's, k's, v's shapes: see _bhnd_view_of_bnhd."""
    return _bhnd_view_of_bnhd(q), _bhnd_view_of_bnhd(k), _bhnd_view_of_bnhd(v)


def _check_op_args(q, k, v) -> None:
    """Guards for direct torch.ops calls (the public function checks more, with nicer text)."""
    torch._check(q.dim() == 4 and k.dim() == 4 and v.dim() == 4,
                 lambda: "cross_attention: q, k, v must be rank 4 (B, H, N, Dh)")
    torch._check(k.shape == v.shape and k.shape[0] == q.shape[0] and k.shape[1] == q.shape[1]
                 and k.shape[3] == q.shape[3],
                 lambda: f"cross_attention: bad shapes q {tuple(q.shape)} k {tuple(k.shape)} "
                         f"v {tuple(v.shape)}")
    torch._check(q.dtype == k.dtype == v.dtype and q.dtype in (torch.float16, torch.bfloat16,
                                                               torch.float32),
                 lambda: f"cross_attention: q, k, v must share one of fp16/bf16/fp32, got "
                         f"{q.dtype} {k.dtype} {v.dtype}")
    torch._check(q.shape[3] <= 256, lambda: f"cross_attention: Dh {q.shape[3]} > 256")


def _check_int32_rows(**tensors: torch.Tensor) -> None:
    """The kernels address one (batch, head) slice in int32 (row * row stride + column *
    column stride; the batch and head parts are int64): its extent must stay below 2**31
    elements, or the offsets would wrap and read or write the wrong memory silently."""
    for name, t in tensors.items():
        if t.numel() == 0:
            continue
        extent = sum((t.shape[i] - 1) * abs(t.stride(i)) for i in range(2, t.dim()))
        torch._check(extent < 2**31,
                     lambda name=name, t=t: f"cross_attention: {name} of shape "
                     f"{tuple(t.shape)} and strides {t.stride()} spans more than 2**31 "
                     f"elements within one (batch, head) slice, beyond the kernels' int32 "
                     f"row offsets")


def _dropout_args(dropout_p: float, seed: torch.Tensor | None, like: torch.Tensor) -> tuple:
    """(seed pointer, p, DROPOUT) kernel arguments. Without dropout the seed is never read, so
    any tensor serves as the pointer."""
    torch._check(0.0 <= dropout_p < 1.0,
                 lambda: f"cross_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p == 0.0:
        return like, 0.0, False
    torch._check(seed is not None and seed.dtype == torch.int64 and seed.numel() == 1
                 and seed.device == like.device,
                 lambda: "cross_attention: dropout_p > 0 needs seed, an int64 tensor of one "
                         "element on q's device")
    return seed, float(dropout_p), True


@triton_op("lcnet_fast::cross_attention", mutates_args=())
def cross_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                           num_kv_splits: int, dropout_p: float = 0.0,
                           seed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (B, H, Nq, Dh), lse fp32 (B, H, Nq)); lse = logsumexp of q k^T * scale per row
    (of the undropped scores). out is a (B, H, Nq, Dh) view of (B, Nq, H, Dh) memory (as
    flash SDPA returns), so out.transpose(1, 2).reshape(B, Nq, H*Dh) is free; lse is
    contiguous.

    num_kv_splits: 1 = plain kernel, n > 1 = split-KV (lowered so no split is empty).
    dropout_p > 0 drops attention probabilities with the Philox mask of `seed` (int64, one
    element, on q's device; see the module doc). Differentiable in q, k, v through out (lse
    is not differentiable)."""
    _check_op_args(q, k, v)
    seed_arg, p_arg, dropout = _dropout_args(dropout_p, seed, q)
    out, lse = _new_outputs(q)
    b, h, nq, dh = q.shape
    nk = k.shape[2]
    if out.numel() == 0:
        return out, lse
    torch._check(nk > 0, lambda: "cross_attention: k and v need at least one key")
    _check_int32_rows(q=q, k=k, v=v, out=out)
    block_d = _block_d(dh)
    cfg = _fwd_config(block_d, q.dtype, q.device.type)
    bm, bn = cfg["BLOCK_M"], cfg["BLOCK_N"]
    per_split, splits = kv_split_layout(nk, num_kv_splits, bn)
    consts = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=block_d, PRECISION=_precision(q.dtype),
                  DROPOUT=dropout, num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    qk_scale = scale * LOG2E
    in_strides = (*q.stride(), *k.stride(), *v.stride())
    if splits == 1:
        so, sl = out.stride(), lse.stride()
        wrap_triton(_fwd_kernel)[(b * h, triton.cdiv(nq, bm), 1)](
            q, k, v, out, lse, *in_strides,
            so[0], so[1], 0, so[2], so[3], sl[0], sl[1], 0, sl[2],
            h, nq, nk, dh, per_split, qk_scale, seed_arg, p_arg, **consts)
        return out, lse
    o_part = q.new_empty((b, h, splits, nq, dh), dtype=torch.float32)
    l_part = q.new_empty((b, h, splits, nq), dtype=torch.float32)
    _check_int32_rows(split_partials=o_part)
    wrap_triton(_fwd_kernel)[(b * h, triton.cdiv(nq, bm), splits)](
        q, k, v, o_part, l_part, *in_strides, *o_part.stride(), *l_part.stride(),
        h, nq, nk, dh, per_split, qk_scale, seed_arg, p_arg, **consts)
    wrap_triton(_combine_kernel)[(b * h, triton.cdiv(nq, bm))](
        o_part, l_part, out, lse, *_store_strides(out), h, nq, dh, splits, BLOCK_M=bm,
        BLOCK_D=block_d, num_warps=cfg["num_warps"])
    return out, lse


@cross_attention_triton.register_fake
def _cross_attention_fake(q, k, v, scale, num_kv_splits, dropout_p=0.0, seed=None):
    # explicit: tracing the launcher itself would run the Triton interpreter on fake tensors;
    # the launcher's own allocation, so the fake strides are the real ones
    return _new_outputs(q)


@triton_op("lcnet_fast::cross_attention_backward", mutates_args=())
def cross_attention_backward_triton(
        dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        out: torch.Tensor, lse: torch.Tensor, scale: float, dropout_p: float = 0.0,
        seed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) in q's dtype, from dout = dL/d out and the forward's out, lse (and its
    dropout_p and seed, which regenerate the forward's mask). Each is a (B, H, N, Dh) view of
    (B, N, H, Dh) memory (as flash SDPA returns), so dq.transpose(1, 2).reshape(B, N, H*Dh)
    is free."""
    _check_op_args(q, k, v)
    seed_arg, p_arg, dropout = _dropout_args(dropout_p, seed, q)
    dq, dk, dv = _new_grads(q, k, v)
    b, h, nq, dh = q.shape
    nk = k.shape[2]
    if q.numel() == 0 or k.numel() == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    _check_int32_rows(q=q, k=k, v=v, out=out, dout=dout, dq=dq, dk=dk, dv=dv)
    block_d = _block_d(dh)
    cfg = _bwd_config(block_d, q.dtype, q.device.type)
    own, step = cfg["OWN"], cfg["STEP"]
    launch = dict(num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])
    lse = lse.contiguous()
    delta = torch.empty((b, h, nq), dtype=torch.float32, device=q.device)
    wrap_triton(_bwd_delta_kernel)[(b * h, triton.cdiv(nq, own))](
        out, dout, delta, *out.stride(), *dout.stride(), h, nq, dh,
        BLOCK_M=own, BLOCK_D=block_d, num_warps=cfg["num_warps"])
    strides = (*q.stride(), *k.stride(), *v.stride(), *dout.stride())
    common = (h, nq, nk, dh, scale * LOG2E, scale, seed_arg, p_arg)
    prec = _precision(q.dtype)
    wrap_triton(_bwd_dkdv_kernel)[(b * h, triton.cdiv(nk, own))](
        q, k, v, dout, lse, delta, dk, dv, *strides, *_store_strides(dk), *_store_strides(dv),
        *common,
        BLOCK_M=step, BLOCK_N=own, BLOCK_D=block_d, PRECISION=prec, DROPOUT=dropout, **launch)
    wrap_triton(_bwd_dq_kernel)[(b * h, triton.cdiv(nq, own))](
        q, k, v, dout, lse, delta, dq, *strides, *_store_strides(dq), *common,
        BLOCK_M=own, BLOCK_N=step, BLOCK_D=block_d, PRECISION=prec, DROPOUT=dropout, **launch)
    return dq, dk, dv


@cross_attention_backward_triton.register_fake
def _cross_attention_backward_fake(dout, q, k, v, out, lse, scale, dropout_p=0.0, seed=None):
    return _new_grads(q, k, v)  # the real kernel's allocation: same shapes and strides


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
    dq, dk, dv = torch.ops.lcnet_fast.cross_attention_backward(dout, q, k, v, out, lse,
                                                               ctx.scale, ctx.dropout_p, seed)
    return dq, dk, dv, None, None, None, None


cross_attention_triton.register_autograd(_backward, setup_context=_setup_context)


# --- the dropout mask, for tests and inspection ----------------------------------------------

@triton.jit
def _keep_mask_kernel(seed_ptr, keep_ptr, NQ, NK, dropout_p,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # grid: (B * H, cdiv(Nq, BLOCK_M), cdiv(Nk, BLOCK_N)); keep: bool (B*H, Nq, Nk) contiguous
    bh = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    cols = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    keep = _dropout_keep(tl.load(seed_ptr), bh, rows, cols, NQ, NK, dropout_p)
    tl.store(keep_ptr + (bh.to(tl.int64) * NQ + rows) * NK + cols, keep,
             mask=(rows < NQ) & (cols < NK))


def dropout_keep_mask(seed: torch.Tensor, batch: int, heads: int, nq: int, nk: int,
                      dropout_p: float) -> torch.Tensor:
    """bool (B, H, Nq, Nk): which attention probabilities the kernels keep for this seed and
    dropout_p (the same Philox draw as _dropout_keep in every kernel). Lets tests build the
    exact reference (softmax(q k^T s) * keep / (1 - p)) v."""
    keep = torch.empty((batch, heads, nq, nk), dtype=torch.bool, device=seed.device)
    if keep.numel():
        grid = (batch * heads, triton.cdiv(nq, 16), triton.cdiv(nk, 16))
        _keep_mask_kernel[grid](seed, keep, nq, nk, float(dropout_p), BLOCK_M=16, BLOCK_N=16)
    return keep
