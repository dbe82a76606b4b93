"""crop_views: the plain PyTorch op chain (reference) against each fast backend.

    pytest benchmarks/bench_crop_views.py                  # CPU: B=8, level 3, size 64
    pytest benchmarks/bench_crop_views.py -m gpu   # GPU: paper scale B=56, level 3, size 448

Group `crop_views`; compare medians within one run (CPU timing here is noisy).
"""
import os

import pytest
import torch

from lcnet_fast.ops import _backend, crop_views

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
HAS_CUDA = torch.cuda.is_available()
CPU_SHAPE = (8, 3, 64)
GPU_SHAPE = (56, 3, 448)


def _images(b, level, size, device):
    g = torch.Generator().manual_seed(0)
    n = level * size
    return torch.randint(0, 256, (b, n, n, 3), dtype=torch.uint8, generator=g).to(device)


def _run(benchmark, backend, device, shape, out_dtype=torch.float32, rounds=20):
    reason = _backend.unavailable_reason(backend, "crop_views", device)
    if reason:
        pytest.skip(reason)
    b, level, size = shape
    images = _images(b, level, size, device)
    os.environ[_backend.ENV_VAR] = backend
    try:
        def fn():
            out = crop_views(images, level, size, MEAN, STD, out_dtype=out_dtype)
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        fn()  # warm-up: lazy imports, Triton compile
        benchmark.extra_info.update(backend=backend, device=device, shape=shape,
                                    dtype=str(out_dtype))
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=2)
    finally:
        os.environ.pop(_backend.ENV_VAR, None)


@pytest.mark.benchmark(group="crop_views")
@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_crop_views_cpu(benchmark, backend):
    _run(benchmark, backend, "cpu", CPU_SHAPE)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.benchmark(group="crop_views")
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("backend", ["torch", "cuda", "triton"])
def test_crop_views_gpu(benchmark, backend, out_dtype):
    _run(benchmark, backend, "cuda", GPU_SHAPE, out_dtype)
