"""cross_attention: SDPA (the torch reference) against the Triton kernels, plain and split-KV.

    pytest benchmarks/bench_cross_attention.py            # CPU: the reference at a small shape
    pytest benchmarks/bench_cross_attention.py -m gpu     # GPU: LLCD shapes, bf16, fwd, fwd+bwd
                                                          # and training fwd+bwd with dropout 0.1

Group `cross_attention`. The GPU numbers set the two measured rules in
lcnet_fast/ops/cross_attention.py: `sdpa_is_faster` (shapes where `auto` should hand CUDA
inputs to SDPA; compare provider=sdpa against the faster triton provider per shape and pass)
and `choose_num_kv_splits` (compare triton-plain against triton-split; extra_info records the
split count the rule picks and the one measured). Compare medians within one run.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from lcnet_fast.ops import _backend, cross_attention
from lcnet_fast.ops.cross_attention import choose_num_kv_splits

HAS_CUDA = torch.cuda.is_available()
CPU_SHAPE = (4, 8, 40, 400, 32)  # (B, H, Nq, Nk, Dh)
GPU_SHAPES = {
    "labels-to-image": (56, 8, 80, 1960, 96),  # training: label queries over image tokens
    "image-to-labels": (56, 8, 1960, 80, 96),  # training: image tokens over graph nodes
    "single-image": (1, 8, 80, 10 * 196, 96),  # inference: B = 1, Crop-Forwarding tokens
}


def _inputs(shape, device, dtype, grad):
    b, h, nq, nk, dh = shape
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, dh, generator=g).to(device, dtype).requires_grad_(grad)
               for n in (nq, nk, nk))
    return q, k, v, torch.randn(b, h, nq, dh, generator=g).to(device, dtype)


TRAIN_DROPOUT = 0.1  # the paper's dropout (LCNet's default), used by mode "fwd+bwd-dropout"


def _run(benchmark, provider, shape, device, dtype, mode, rounds):
    splits = None
    p = TRAIN_DROPOUT if mode == "fwd+bwd-dropout" else 0.0
    if provider == "sdpa":
        fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # noqa: E731
    else:
        reason = _backend.unavailable_reason("triton", "cross_attention", device)
        if reason:
            pytest.skip(reason)
        b, h, nq, nk, _ = shape
        splits = 1 if provider == "triton-plain" else max(2, choose_num_kv_splits(b, h, nq, nk))
        fn = lambda q, k, v: cross_attention(q, k, v, dropout_p=p,  # noqa: E731
                                             num_kv_splits=splits)
        os.environ[_backend.ENV_VAR] = "triton"
    q, k, v, do = _inputs(shape, device, dtype, grad=mode != "fwd")
    try:
        def step():
            if mode == "fwd":
                with torch.no_grad():
                    out = fn(q, k, v)
            else:
                out = fn(q, k, v)
                torch.autograd.grad(out, (q, k, v), do)
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        step()  # warm-up: lazy imports, Triton compile
        b, h, nq, nk, _ = shape
        benchmark.extra_info.update(provider=provider, shape=shape, dtype=str(dtype), mode=mode,
                                    dropout_p=p, device=device, kv_splits_measured=splits,
                                    kv_splits_rule=choose_num_kv_splits(b, h, nq, nk))
        benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=2)
    finally:
        os.environ.pop(_backend.ENV_VAR, None)


@pytest.mark.benchmark(group="cross_attention")
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_cross_attention_cpu_reference(benchmark, mode):
    _run(benchmark, "sdpa", CPU_SHAPE, "cpu", torch.float32, mode, rounds=5)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.benchmark(group="cross_attention")
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd", "fwd+bwd-dropout"])
@pytest.mark.parametrize("shape", list(GPU_SHAPES.values()), ids=list(GPU_SHAPES))
@pytest.mark.parametrize("provider", ["sdpa", "triton-plain", "triton-split"])
def test_cross_attention_gpu(benchmark, provider, shape, mode):
    if mode == "fwd+bwd-dropout" and (shape == GPU_SHAPES["single-image"]
                                      or provider == "triton-split"):
        pytest.skip("dropout is a training mode: the training shapes, whose rule is plain")
    _run(benchmark, provider, shape, "cuda", torch.bfloat16, mode, rounds=30)
