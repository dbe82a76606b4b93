"""Triton kernel and launcher of crop_views (the op lcnet_fast::crop_views_triton is defined in
lcnet_fast/ops/crop_views.py, which imports this module on first use).

Design trade-off: one program owns a BLOCK_T x BLOCK_X block of thumbnail pixels of
one image, i.e. the LEVEL x LEVEL input pixels under each; it walks those LEVEL**2
offsets (LEVEL is a constexpr, so the loops unroll), loading each input byte once,
writing it into its tile and accumulating the exact integer sum for the thumbnail.
Input is read once and every output written once; neighbouring lanes are LEVEL pixels
apart, so accesses are strided by LEVEL rather than fully coalesced (the CUDA kernel
does the column walk that coalesces; this one stays simple and layout-agnostic).
Divisions use div_rn (IEEE) so tiles match torch's fp32 bit for bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from lcnet_fast.ops._shapes import crop_views_output


@triton.jit
def _crop_views_kernel(
    in_ptr,  # uint8 (B, H, W, 3), H = W = LEVEL * S, element strides in_s*
    out_ptr,  # out dtype (B, V, 3, S, S), element strides out_s*
    mean_ptr,  # float32 (3,)
    std_ptr,  # float32 (3,)
    S,  # int: tile size (thumbnail is S x S)
    in_sb, in_sy, in_sx, in_sc,
    out_sb, out_sv, out_sc, out_sy, out_sx,
    LEVEL: tl.constexpr,
    BLOCK_T: tl.constexpr,  # thumbnail rows per program
    BLOCK_X: tl.constexpr,  # thumbnail columns per program
):  # fmt: skip
    # grid: (cdiv(S, BLOCK_X), cdiv(S, BLOCK_T), B)
    pid_x = tl.program_id(0)
    pid_t = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    tr = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)  # thumbnail rows    (BLOCK_T,)
    tc = pid_x * BLOCK_X + tl.arange(0, BLOCK_X)  # thumbnail columns (BLOCK_X,)
    mask = (tr[:, None] < S) & (tc[None, :] < S)  # (BLOCK_T, BLOCK_X)
    img = in_ptr + b * in_sb
    out_b = out_ptr + b * out_sb
    for c in tl.static_range(3):
        m = tl.load(mean_ptr + c)
        s = tl.load(std_ptr + c)
        acc = tl.zeros((BLOCK_T, BLOCK_X), dtype=tl.int32)
        for k in tl.static_range(LEVEL):
            y = tr * LEVEL + k  # image rows (BLOCK_T,)
            r = y // S  # tile row
            ty = y - r * S
            for j in tl.static_range(LEVEL):
                x = tc * LEVEL + j  # image columns (BLOCK_X,)
                p = tl.load(
                    img + y[:, None].to(tl.int64) * in_sy + x[None, :] * in_sx + c * in_sc,
                    mask=mask,
                    other=0,
                ).to(tl.int32)
                acc += p
                if LEVEL > 1:
                    cc = x // S  # tile column
                    tx = x - cc * S
                    v = tl.math.div_rn(tl.math.div_rn(p.to(tl.float32), 255.0) - m, s)
                    view = 1 + r[:, None] * LEVEL + cc[None, :]
                    dst = (
                        out_b
                        + view.to(tl.int64) * out_sv
                        + c * out_sc
                        + ty[:, None] * out_sy
                        + tx[None, :] * out_sx
                    )
                    tl.store(dst, v.to(out_ptr.dtype.element_ty), mask=mask)
        mean_px = tl.math.div_rn(acc.to(tl.float32), 255.0 * LEVEL * LEVEL)
        v = tl.math.div_rn(mean_px - m, s)
        dst = out_b + c * out_sc + tr[:, None] * out_sy + tc[None, :] * out_sx
        tl.store(dst, v.to(out_ptr.dtype.element_ty), mask=mask)


def _blocks(size: int, device_type: str) -> tuple[int, int]:
    if device_type == "cpu":  # interpreter: one program per small image, fewest iterations
        return min(16, triton.next_power_of_2(size)), min(16, triton.next_power_of_2(size))
    return 8, min(64, triton.next_power_of_2(size))


def forward(
    images: torch.Tensor,
    level: int,
    size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    out_dtype: torch.dtype,
    channels_last: bool,
) -> torch.Tensor:
    """Same contract as torch.ops.lcnet_fast.crop_views; arguments already validated."""
    out = crop_views_output(images, level, size, out_dtype, channels_last)
    if out.numel() == 0:
        return out
    block_t, block_x = _blocks(size, images.device.type)
    grid = (triton.cdiv(size, block_x), triton.cdiv(size, block_t), images.shape[0])
    wrap_triton(_crop_views_kernel)[grid](
        images,
        out,
        mean,
        std,
        size,
        *images.stride(),
        *out.stride(),
        LEVEL=level,
        BLOCK_T=block_t,
        BLOCK_X=block_x,
    )
    return out
