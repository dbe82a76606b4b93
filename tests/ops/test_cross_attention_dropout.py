"""Attention dropout inside cross_attention's Triton kernels (CPU interpreter): forward and
backward parity with the exact reference built from the kernels' own mask
(cross_attention_keep_mask.py), the mask's statistics (keep fraction, independence across
heads, batches and seeds), the seed drawn from torch's RNG by the public function, and the
op's seed checks. Dropout at the GPU block sizes, under opcheck, compile and the fuzz is in
test_cross_attention_triton.py; on a GPU in test_cross_attention_gpu.py. Helpers and the
tolerance rule: cross_attention_helpers.py."""

import math

import pytest
import torch
from cross_attention_helpers import (  # tests/ops (rootdir import)
    check_parity,
    make_qkv,
    needs_interp,
    seed_tensor,
)

from lcnet_fast.ops import cross_attention

DROPOUT_CASES = [  # (B, H, Nq, Nk, Dh), dropout_p, num_kv_splits
    ((1, 1, 1, 1, 16), 0.5, 1),
    ((1, 2, 5, 37, 24), 0.1, 1),
    ((2, 1, 17, 33, 20), 0.5, 1),
    ((1, 2, 5, 37, 24), 0.3, 3),  # split-KV: each split draws only its own keys' numbers
    ((1, 2, 20, 5, 48), 0.9, 1),  # image tokens -> few graph nodes, most dropped
]


@needs_interp
@pytest.mark.parametrize(
    "shape,p,splits",
    DROPOUT_CASES,
    ids=["x".join(map(str, c[0])) + f"-p{c[1]}-s{c[2]}" for c in DROPOUT_CASES],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_triton_interpreter_dropout_parity(use_backend, shape, p, splits, dtype):
    """Forward and backward against (softmax(q k^T s) * keep / (1-p)) v with the kernels'
    own mask: exact, so a wrong mask, scale or gradient rule fails by far more than rounding."""
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, seed=sum(shape))
    check_parity(
        q, k, v, do, dropout_p=p, seed=seed_tensor(987654321 + sum(shape)), num_kv_splits=splits
    )


@needs_interp
def test_triton_dropout_mask_statistics():
    """The mask the kernels use keeps a 1-p fraction, differs per head, batch and seed (the
    parity tests cannot see a mask that is consistently wrong, e.g. all kept)."""
    from cross_attention_keep_mask import dropout_keep_mask  # tests/ops

    p, shape = 0.3, (2, 3, 50, 70)
    keep = dropout_keep_mask(seed_tensor(2024), *shape, p)
    assert keep.shape == shape and keep.dtype == torch.bool
    n = keep.numel()
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(keep.float().mean().item() - (1 - p)) < 5 * sd
    assert not torch.equal(keep[0, 0], keep[0, 1]) and not torch.equal(keep[0], keep[1])
    other = dropout_keep_mask(seed_tensor(2025), *shape, p)
    agree = (keep == other).float().mean().item()  # independent masks: (1-p)^2 + p^2
    assert abs(agree - ((1 - p) ** 2 + p**2)) < 5 * math.sqrt(0.25 / n)
    assert torch.equal(keep, dropout_keep_mask(seed_tensor(2024), *shape, p))


@needs_interp
def test_triton_dropout_seed_comes_from_torch_rng(use_backend):
    use_backend("triton")
    q, k, v, do = make_qkv(1, 2, 5, 37, 24)
    torch.manual_seed(11)
    first = cross_attention(q, k, v, dropout_p=0.4)
    torch.manual_seed(11)
    again = cross_attention(q, k, v, dropout_p=0.4)
    later = cross_attention(q, k, v, dropout_p=0.4)
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert not torch.allclose(first, cross_attention(q, k, v))
    torch.manual_seed(11)  # the public function draws one int64 seed from torch's RNG
    seed = torch.randint(2**62, (1,), dtype=torch.int64)
    expected = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 1 / math.sqrt(24), 1, 0.4, seed)
    assert torch.equal(first, expected[0])


@needs_interp
def test_triton_dropout_needs_a_seed():
    q, k, v, _ = make_qkv(1, 1, 2, 3, 16)
    op = torch.ops.lcnet_fast.cross_attention_triton
    for seed in (None, torch.tensor([1], dtype=torch.int32), torch.tensor([1, 2])):
        with pytest.raises(RuntimeError, match="needs seed, an int64 tensor of one element"):
            op(q, k, v, 0.25, 1, 0.3, seed)
    with pytest.raises(RuntimeError, match="dropout_p must be in \\[0, 1\\)"):
        op(q, k, v, 0.25, 1, 1.0, seed_tensor(1))
