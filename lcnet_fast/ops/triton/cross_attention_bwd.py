"""Triton backward kernels of cross_attention: delta, dK/dV and dQ.

Design trade-off. delta = rowsum(dO * O) first (one small kernel), then one kernel over KV
blocks that accumulates dk and dv in registers while looping over all query blocks, and a
SEPARATE dq kernel over query blocks that loops over all KV blocks (recomputing q k^T). The
alternative, atomically adding dq from the KV-block programs, is worst exactly on this op's main
shape: with Nq = 80 and Nk = 1960 all ~31 KV programs of a head add into the same 80 x Dh rows
(heavy atomic contention), the fp32 dq buffer needs an extra cast pass, and the result is not
deterministic. The recompute costs one extra Nq x Nk x Dh matmul per head, which is small for
these short query sides, and keeps the gradients bit-reproducible.

Dropout: the kernels regenerate the forward's mask from its seed (dropout_keep, see
cross_attention_fwd.py) and use dV = (P Z)^T dO, dP = (dO V^T) Z, dS = P (dP - rowsum(dO O))
(rowsum(P dP) = rowsum(dO O) still holds with the dropped O). P and dS are rounded to the input
dtype before their second dot, as in FlashAttention.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lcnet_fast.ops.triton.cross_attention_fwd import dropout_keep


@triton.jit
def bwd_delta_kernel(
    o_ptr,  # (B, H, Nq, Dh), strides so_*
    do_ptr,  # (B, H, Nq, Dh), strides sdo_*
    delta_ptr,  # fp32 (B*H, Nq) contiguous: rowsum(dO * O)
    so_b, so_h, so_m, so_d,
    sdo_b, sdo_h, sdo_m, sdo_d,
    H, NQ, DH,  # ints
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    # grid: (B * H, cdiv(Nq, BLOCK_M))
    bh = tl.program_id(0)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_mask = offs_m < NQ
    mask = m_mask[:, None] & (offs_d[None, :] < DH)
    o = tl.load(
        o_ptr + b * so_b + h * so_h + offs_m[:, None] * so_m + offs_d[None, :] * so_d,
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    do = tl.load(
        do_ptr + b * sdo_b + h * sdo_h + offs_m[:, None] * sdo_m + offs_d[None, :] * sdo_d,
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    tl.store(delta_ptr + bh.to(tl.int64) * NQ + offs_m, tl.sum(o * do, 1), mask=m_mask)


@triton.jit
def bwd_dkdv_kernel(
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
):  # fmt: skip
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
    kb = tl.load(
        k_ptr + b * sk_b + h * sk_h + offs_n[:, None] * sk_n + offs_d[None, :] * sk_d,
        mask=nd_mask,
        other=0.0,
    )  # (BLOCK_N, BLOCK_D)
    vb = tl.load(
        v_ptr + b * sv_b + h * sv_h + offs_n[:, None] * sv_n + offs_d[None, :] * sv_d,
        mask=nd_mask,
        other=0.0,
    )  # (BLOCK_N, BLOCK_D)
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
        qb = tl.load(
            q_base + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d, mask=md_mask, other=0.0
        )  # (BLOCK_M, BLOCK_D)
        dob = tl.load(
            do_base + offs_m[:, None] * sdo_m + offs_d[None, :] * sdo_d, mask=md_mask, other=0.0
        )  # (BLOCK_M, BLOCK_D)
        lse = tl.load(lse_ptr + row_base + offs_m, mask=m_mask, other=0.0)
        delta = tl.load(delta_ptr + row_base + offs_m, mask=m_mask, other=0.0)
        st = tl.dot(kb, tl.trans(qb), input_precision=PRECISION) * qk_scale  # (BLOCK_N, BLOCK_M)
        pt = tl.math.exp2(st - lse[None, :] * 1.4426950408889634)
        # padded keys (k = 0) would give exp2(-lse): finite in fp32 but may overflow a 16-bit
        # cast; zero them with the padded queries
        pt = tl.where(m_mask[None, :] & n_mask[:, None], pt, 0.0)
        dpt = tl.dot(vb, tl.trans(dob), input_precision=PRECISION)  # (BLOCK_N, BLOCK_M)
        if DROPOUT:  # the forward used P Z: dV = (P Z)^T dO, dP = (dO V^T) Z
            keep = dropout_keep(seed, bh, offs_m[None, :], offs_n[:, None], NQ, NK, dropout_p)
            dv += tl.dot(
                tl.where(keep, pt * inv_keep, 0.0).to(dob.dtype), dob, input_precision=PRECISION
            )
            dpt = tl.where(keep, dpt * inv_keep, 0.0)
        else:
            dv += tl.dot(pt.to(dob.dtype), dob, input_precision=PRECISION)
        dst = pt * (dpt - delta[None, :])
        dk += tl.dot(dst.to(qb.dtype), qb, input_precision=PRECISION)
    dk = dk * sm_scale
    dk_base = dk_ptr + b * sdk_b + h * sdk_h  # int64 offset; the in-block part in int32
    dv_base = dv_ptr + b * sdv_b + h * sdv_h
    tl.store(
        dk_base + (offs_n[:, None] * sdk_n + offs_d[None, :]),
        dk.to(dk_ptr.dtype.element_ty),
        mask=nd_mask,
    )
    tl.store(
        dv_base + (offs_n[:, None] * sdv_n + offs_d[None, :]),
        dv.to(dv_ptr.dtype.element_ty),
        mask=nd_mask,
    )


@triton.jit
def bwd_dq_kernel(
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
):  # fmt: skip
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
    qb = tl.load(
        q_ptr + b * sq_b + h * sq_h + offs_m[:, None] * sq_m + offs_d[None, :] * sq_d,
        mask=md_mask,
        other=0.0,
    )  # (BLOCK_M, BLOCK_D)
    dob = tl.load(
        do_ptr + b * sdo_b + h * sdo_h + offs_m[:, None] * sdo_m + offs_d[None, :] * sdo_d,
        mask=md_mask,
        other=0.0,
    )  # (BLOCK_M, BLOCK_D)
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
        kt = tl.load(
            k_base + n[None, :] * sk_n + offs_d[:, None] * sk_d, mask=dn_mask, other=0.0
        )  # (BLOCK_D, BLOCK_N)
        vt = tl.load(
            v_base + n[None, :] * sv_n + offs_d[:, None] * sv_d, mask=dn_mask, other=0.0
        )  # (BLOCK_D, BLOCK_N)
        s = tl.dot(qb, kt, input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        p = tl.math.exp2(s - lse2[:, None])
        p = tl.where(n_mask[None, :], p, 0.0)
        dp = tl.dot(dob, vt, input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        if DROPOUT:
            keep = dropout_keep(seed, bh, offs_m[:, None], n[None, :], NQ, NK, dropout_p)
            dp = tl.where(keep, dp * inv_keep, 0.0)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(kt.dtype), tl.trans(kt), input_precision=PRECISION)
    dq = dq * sm_scale
    dq_base = dq_ptr + b * sdq_b + h * sdq_h  # int64 offset; the in-block part in int32
    tl.store(
        dq_base + (offs_m[:, None] * sdq_m + offs_d[None, :]),
        dq.to(dq_ptr.dtype.element_ty),
        mask=md_mask,
    )
