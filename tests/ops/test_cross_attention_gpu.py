"""cross_attention's Triton kernels on a CUDA device (marked gpu, skipped without one; run by
benchmarks/gpu_check.sh): parity with the fp64 oracle at the LLCD's shapes and dtypes, plain
and split-KV, auto picking Triton on CUDA with non-contiguous inputs, opcheck and
torch.compile with inductor, attention dropout parity, and auto's dropout running the Triton
kernels with a seed from torch's CUDA RNG. Helpers and the tolerance rule:
cross_attention_helpers.py."""

import math

import pytest
import torch
from cross_attention_helpers import (  # tests/ops (rootdir import)
    check_parity,
    choose_backend,
    gpu,
    make_qkv,
    run,
    seed_tensor,
)

from lcnet_fast.ops import cross_attention

BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32
GPU_CASES = [  # (B, H, Nq, Nk, Dh), dtype, num_kv_splits; kept small: each new Dh/dtype compiles
    ((1, 1, 1, 1, 16), BF16, None),
    ((2, 3, 5, 37, 24), BF16, 1),
    ((2, 3, 5, 37, 24), BF16, 4),
    ((2, 8, 80, 1960, 96), BF16, None),  # LLCD labels -> image tokens (plain by the rule)
    ((2, 8, 80, 1960, 96), BF16, 4),
    ((2, 8, 1960, 80, 96), BF16, None),  # image tokens -> graph nodes
    ((1, 8, 80, 1960, 96), BF16, None),  # single-image inference (split-KV by the rule)
    ((1, 2, 33, 300, 256), BF16, None),
    ((3, 2, 70, 129, 48), BF16, 2),
    ((2, 3, 5, 37, 24), FP16, 1),
    ((1, 8, 80, 1960, 96), FP16, None),
    ((2, 3, 5, 37, 24), FP32, 3),
    ((3, 2, 70, 129, 48), FP32, 1),
    ((1, 2, 33, 300, 256), FP32, None),
]


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize(
    "shape,dtype,splits",
    GPU_CASES,
    ids=["x".join(map(str, c[0])) + f"-{str(c[1])[6:]}-s{c[2]}" for c in GPU_CASES],
)
def test_gpu_parity(use_backend, shape, dtype, splits):
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, device="cuda", seed=sum(shape))
    check_parity(q, k, v, do, num_kv_splits=splits)


@gpu
@pytest.mark.gpu
def test_gpu_auto_is_triton_and_non_contiguous(use_backend):
    use_backend("auto")
    assert choose_backend("cuda", str(torch.bfloat16)) == "triton"
    b, h, nq, nk, dh = 4, 8, 80, 500, 96
    x = torch.randn(b, nq, h, dh, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(1, nk, h, dh, device="cuda", dtype=torch.bfloat16)
    k = kv.transpose(1, 2).expand(b, -1, -1, -1)
    do = torch.randn(b, h, nq, dh, device="cuda", dtype=torch.bfloat16)
    check_parity(x.transpose(1, 2), k, k, do)


@gpu
@pytest.mark.gpu
def test_gpu_opcheck_and_compile(use_backend):
    use_backend("triton")
    q, k, v, do = make_qkv(2, 2, 17, 70, 48, dtype=torch.float16, device="cuda")
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    for splits in (1, 3):
        torch.library.opcheck(
            torch.ops.lcnet_fast.cross_attention_triton.default, (q, k, v, 0.2, splits)
        )
    f = torch.compile(lambda a, b, c: cross_attention(a, b, c), fullgraph=True)
    out, grads = run(f, q, k, v, do)
    e_out, e_grads = run(cross_attention, q, k, v, do)
    torch.testing.assert_close(out, e_out)
    for a, e in zip(grads, e_grads, strict=True):
        torch.testing.assert_close(a, e)


GPU_DROPOUT_CASES = [  # (B, H, Nq, Nk, Dh), dtype, num_kv_splits, dropout_p
    ((2, 3, 5, 37, 24), BF16, 1, 0.5),
    ((2, 8, 80, 1960, 96), BF16, None, 0.1),  # LLCD training: labels -> image tokens
    ((2, 8, 1960, 80, 96), BF16, None, 0.1),  # image tokens -> graph nodes
    ((1, 8, 80, 1960, 96), BF16, None, 0.1),  # split-KV by the rule
    ((3, 2, 70, 129, 48), FP32, 2, 0.3),
]


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize(
    "shape,dtype,splits,p",
    GPU_DROPOUT_CASES,
    ids=["x".join(map(str, c[0])) + f"-{str(c[1])[6:]}-s{c[2]}-p{c[3]}" for c in GPU_DROPOUT_CASES],
)
def test_gpu_dropout_parity(use_backend, shape, dtype, splits, p):
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, device="cuda", seed=sum(shape))
    check_parity(
        q, k, v, do, dropout_p=p, seed=seed_tensor(7 + sum(shape), "cuda"), num_kv_splits=splits
    )


@gpu
@pytest.mark.gpu
def test_gpu_auto_dropout_is_triton(use_backend):
    """auto on CUDA trains through the Triton kernels: the seed drawn from torch's CUDA RNG
    reproduces the output exactly, and the mask is not SDPA's."""
    use_backend("auto")
    q, k, v, _ = make_qkv(2, 8, 80, 500, 96, dtype=torch.bfloat16, device="cuda")
    torch.manual_seed(2)
    out = cross_attention(q, k, v, dropout_p=0.1)
    torch.manual_seed(2)
    seed = torch.randint(2**62, (1,), dtype=torch.int64, device="cuda")
    expected = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 1 / math.sqrt(96), 1, 0.1, seed)
    assert torch.equal(out, expected[0])
