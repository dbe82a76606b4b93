"""Launch configuration of the cross_attention Triton kernels: block sizes, warps, stages.

Two sets. In the CPU interpreter (TRITON_INTERPRET=1) every program runs serially in Python, so
small 16 x 16 blocks keep the tests' small shapes cheap. On GPU the configurations satisfy one
invariant: no kernel spills registers on sm_90 (H200), at most a few bytes per thread, as read
from ptxas for every kernel at these configurations, dropout on and off, by
tests/ops/sm90_compile.py (tests/ops/test_triton_sm90_compile.py enforces it on every test run,
without a GPU). They are the spill-free configurations nearest the FlashAttention defaults, not
yet tuned by timing on a GPU; the compiler figures and the configurations they replaced are in
BENCHMARKS.md ("GPU kernels compiled without a GPU"). tests/ops/test_cross_attention_triton.py
also runs the GPU block sizes in the interpreter (gpu_block_configs), so their masking is tested
on CPU.
"""

from __future__ import annotations

import torch
import triton

from lcnet_fast.ops._shapes import FWD_BLOCK_M_GPU


def block_d_for(dh: int) -> int:
    """The head dim padded to a power of two >= 16 (tl.dot's minimum); columns past Dh are
    masked."""
    return max(16, triton.next_power_of_2(dh))


def precision(dtype: torch.dtype) -> str:
    """tl.dot input_precision: IEEE for fp32 (never TF32, so fp32 matches PyTorch's fp32)."""
    return "ieee" if dtype == torch.float32 else "tf32"  # 16-bit dtypes ignore the setting


def fwd_config(block_d: int, dtype: torch.dtype, device_type: str) -> dict:
    """BLOCK_M, BLOCK_N, num_warps, num_stages of the forward (and combine) kernels."""
    if device_type == "cpu":  # interpreter: small blocks, exercised by small test shapes
        return dict(BLOCK_M=16, BLOCK_N=16, num_warps=1, num_stages=1)
    if dtype == torch.float32:  # IEEE dots are FMA loops (no tensor cores): more registers
        if block_d <= 64:
            return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=32, num_warps=8, num_stages=2)
        # no 64-row configuration avoids spilling at Dh > 64 in fp32; 32 rows do
        return dict(BLOCK_M=32, BLOCK_N=16, num_warps=8, num_stages=1)
    if block_d <= 64:
        return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=64, num_warps=4, num_stages=3)
    if block_d <= 128:  # the LLCD's Dh = 96: 4 warps would spill here, 8 do not
        return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=64, num_warps=8, num_stages=2)
    return dict(BLOCK_M=FWD_BLOCK_M_GPU, BLOCK_N=16, num_warps=8, num_stages=1)


def bwd_config(block_d: int, dtype: torch.dtype, device_type: str) -> dict:
    """Blocks of the backward: dkdv programs own BLOCK_N keys and step BLOCK_M queries; dq
    programs own BLOCK_M queries and step BLOCK_N keys (the same two numbers, swapped roles:
    the step side is the small one)."""
    if device_type == "cpu":
        return dict(OWN=16, STEP=16, num_warps=1, num_stages=1)
    wide = dtype == torch.float32
    if block_d <= 64:
        return dict(OWN=64, STEP=32, num_warps=8 if wide else 4, num_stages=2)
    if block_d <= 128:
        return dict(
            OWN=64 if not wide else 32, STEP=32 if not wide else 16, num_warps=8, num_stages=1
        )
    return dict(OWN=32, STEP=16, num_warps=8, num_stages=1)


def kv_split_layout(nk: int, num_splits: int, block_n: int) -> tuple[int, int]:
    """(keys per split, number of non-empty splits) for num_splits requested splits: whole
    BLOCK_N blocks per split, lowered so that no split is empty."""
    blocks = triton.cdiv(nk, block_n)
    per_split = triton.cdiv(blocks, max(1, min(num_splits, blocks))) * block_n
    return per_split, triton.cdiv(nk, per_split)
