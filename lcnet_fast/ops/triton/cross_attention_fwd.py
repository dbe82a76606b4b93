"""Triton forward kernels of cross_attention: the attention itself and the split-KV combine.

Design trade-off. FlashAttention-2 scheme: a forward program owns BLOCK_M query rows of one
(batch, head) and streams the keys in BLOCK_N blocks with an online softmax (running max and
sum in fp32, exp2 with the scale folded into log2 units), so the Nq x Nk matrix never exists;
it saves lse = logsumexp of each row's scores for the backward. LLCD's label queries are short
(Nq = 20..80): with B*H small (single-image inference) the plain grid has only a few programs,
so a split-KV forward spreads each query block's keys over several programs, each writing an
fp32 partial (out, lse), and combine_kernel merges them (extra traffic B*H*S*Nq*(Dh+1) floats,
small next to reading K and V). How many splits: choose_num_kv_splits in
lcnet_fast/ops/cross_attention.py; keys per split: kv_split_layout in cross_attention_config.py.

Dropout (training). dropout_p > 0 drops attention probabilities inside the kernels, as
FlashAttention does: element (b*h, i, j) of the Nq x Nk matrix is kept when Philox
(tl.rand) draws u >= p at counter (b*h * Nq + i) * Nk + j from a seed tensor drawn from
torch's RNG per call (dropout_keep). The counter depends only on the element's position, so the
forward (plain or split-KV) and both backward kernels see the same mask without storing it.
Kept probabilities are scaled by 1/(1-p); lse and the normaliser l stay those of the undropped
softmax, so out = (P * Z) V with Z = keep/(1-p).

Precision. fp32 dots use IEEE precision (never TF32) so fp32 matches PyTorch's fp32; fp16/bf16
inputs go to tensor cores with fp32 accumulation, and the probabilities are rounded to the
input dtype before their second dot, as in FlashAttention. Dh is padded to BLOCK_D, a power of
two >= 16 (tl.dot's minimum), with masks, so Dh = 24, 48, 96 work; Nq and Nk are masked.
Kernel arguments, output layout and address arithmetic: see cross_attention.py (the
launchers).
"""

from __future__ import annotations

import triton
import triton.language as tl

#: log2(e): the kernels work in log2 units (exp2), the launchers fold it into the scale.
LOG2E = 1.4426950408889634


@triton.jit
def dropout_keep(seed, bh, rows, cols, NQ, NK, dropout_p):
    """Keep-mask of the attention elements (rows, cols) of head bh (broadcastable 2D index
    blocks): one Philox counter per element, in int64 so B*H*Nq*Nk may exceed 2**31."""
    counter = (bh.to(tl.int64) * NQ + rows.to(tl.int64)) * NK + cols.to(tl.int64)
    return tl.rand(seed, counter) >= dropout_p


@triton.jit
def fwd_kernel(
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
):  # fmt: skip
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
    q = tl.load(
        q_ptr + b * sq_b + h * sq_h + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
        mask=m_mask[:, None] & d_mask[None, :],
        other=0.0,
    )  # (BLOCK_M, BLOCK_D)
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
        kt = tl.load(
            k_base + n[None, :] * sk_n + offs_d[:, None] * sk_d,
            mask=d_mask[:, None] & n_mask[None, :],
            other=0.0,
        )  # (BLOCK_D, BLOCK_N)
        s = tl.dot(q, kt, input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), log2
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        vb = tl.load(
            v_base + n[:, None] * sv_n + offs_d[None, :] * sv_d,
            mask=n_mask[:, None] & d_mask[None, :],
            other=0.0,
        )  # (BLOCK_N, BLOCK_D)
        if DROPOUT:  # l_i above sums the undropped p: the softmax normaliser is unchanged
            p = tl.where(
                dropout_keep(seed, bh, offs_m[:, None], n[None, :], NQ, NK, dropout_p), p, 0.0
            )
        acc = acc * alpha[:, None] + tl.dot(p.to(vb.dtype), vb, input_precision=PRECISION)
        m_i = m_new
    if DROPOUT:
        acc = acc * (1.0 / (1.0 - dropout_p))
    out = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * (1.0 / 1.4426950408889634)
    o_off = b * so_b + h * so_h + split * so_s
    tl.store(
        o_ptr + o_off + offs_m[:, None] * so_m + offs_d[None, :] * so_d,
        out.to(o_ptr.dtype.element_ty),
        mask=m_mask[:, None] & d_mask[None, :],
    )
    tl.store(lse_ptr + b * sl_b + h * sl_h + split * sl_s + offs_m * sl_m, lse, mask=m_mask)


@triton.jit
def combine_kernel(
    op_ptr,  # fp32 (B*H, S, Nq, Dh) contiguous: split partial outputs (each normalised)
    lp_ptr,  # fp32 (B*H, S, Nq) contiguous: split partial logsumexps
    o_ptr,  # (B, H, Nq, Dh), strides so_b, so_h, so_m and 1: output
    lse_ptr,  # fp32 (B*H, Nq) contiguous
    so_b, so_h, so_m,
    H, NQ, DH, NUM_SPLITS,  # ints
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
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
    tl.store(
        o_ptr + o_off + offs_m[:, None] * so_m + offs_d[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=mask,
    )
    tl.store(lse_ptr + bh * NQ + offs_m, m_i + tl.log(l_i), mask=m_mask)
