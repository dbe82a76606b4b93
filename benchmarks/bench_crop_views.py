"""crop_views: the plain PyTorch op chain (reference) against each fast backend.

    pytest benchmarks/bench_crop_views.py                  # CPU: B=8, level 3, size 64
    pytest benchmarks/bench_crop_views.py -m gpu   # GPU: paper scale B=56, level 3, size 448

Group `crop_views`; compare medians within one run (CPU timing here is noisy). Providers: the
torch op chain (crop_views_reference, eager), "torch.compile" (the same chain through inductor,
what a user would try before a hand-written kernel) and each kernel backend.
"""
import os

import pytest
import torch

from lcnet_fast.ops import _backend, crop_views
from lcnet_fast.ops.crop_views import crop_views_reference

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
    b, level, size = shape
    images = _images(b, level, size, device)
    if backend == "torch.compile":
        mean, std = (torch.tensor(x, device=device) for x in (MEAN, STD))
        chain = torch.compile(crop_views_reference, fullgraph=True)
        view_fn = lambda: chain(images, level, size, mean, std, out_dtype)  # noqa: E731
        forced = "torch"
    else:
        reason = _backend.unavailable_reason(backend, "crop_views", device)
        if reason:
            pytest.skip(reason)
        view_fn = lambda: crop_views(images, level, size, MEAN, STD, out_dtype=out_dtype)  # noqa: E731
        forced = backend
    os.environ[_backend.ENV_VAR] = forced
    try:
        def fn():
            out = view_fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        fn()  # warm-up: lazy imports, Triton / inductor compile
        benchmark.extra_info.update(backend=backend, device=device, shape=shape,
                                    dtype=str(out_dtype))
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=2)
    finally:
        os.environ.pop(_backend.ENV_VAR, None)


@pytest.mark.benchmark(group="crop_views")
@pytest.mark.parametrize("backend", ["torch", "torch.compile", "cpp"])
def test_crop_views_cpu(benchmark, backend):
    _run(benchmark, backend, "cpu", CPU_SHAPE)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.benchmark(group="crop_views")
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("backend", ["torch", "torch.compile", "cuda", "triton"])
def test_crop_views_gpu(benchmark, backend, out_dtype):
    _run(benchmark, backend, "cuda", GPU_SHAPE, out_dtype)
