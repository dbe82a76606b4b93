"""The attention-dropout mask of the cross_attention Triton kernels, materialised for tests.

The kernels never store their mask: each regenerates it from the seed with dropout_keep
(lcnet_fast/ops/triton/cross_attention_fwd.py). This kernel calls the same function, so
the cross_attention tests (check_parity in cross_attention_helpers.py) can build the exact
reference (softmax(q k^T s) * keep / (1 - p)) v.
Imported by the tests (and compiled for sm_90 by sm90_compile.py) after TRITON_INTERPRET is
decided, like every Triton kernel module.
"""

import torch
import triton
import triton.language as tl

from lcnet_fast.ops.triton.cross_attention_fwd import dropout_keep


@triton.jit
def keep_mask_kernel(
    seed_ptr, keep_ptr, NQ, NK, dropout_p, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr
):
    # grid: (B * H, cdiv(Nq, BLOCK_M), cdiv(Nk, BLOCK_N)); keep: bool (B*H, Nq, Nk) contiguous
    bh = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    cols = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    keep = dropout_keep(tl.load(seed_ptr), bh, rows, cols, NQ, NK, dropout_p)
    tl.store(
        keep_ptr + (bh.to(tl.int64) * NQ + rows) * NK + cols, keep, mask=(rows < NQ) & (cols < NK)
    )


def dropout_keep_mask(
    seed: torch.Tensor, batch: int, heads: int, nq: int, nk: int, dropout_p: float
) -> torch.Tensor:
    """bool (B, H, Nq, Nk): which attention probabilities the kernels keep for this seed and
    dropout_p (the same Philox draw as dropout_keep in every kernel)."""
    keep = torch.empty((batch, heads, nq, nk), dtype=torch.bool, device=seed.device)
    if keep.numel():
        grid = (batch * heads, triton.cdiv(nq, 16), triton.cdiv(nk, 16))
        keep_mask_kernel[grid](seed, keep, nq, nk, float(dropout_p), BLOCK_M=16, BLOCK_N=16)
    return keep
