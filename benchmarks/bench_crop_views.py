"""crop_views: the plain PyTorch op chain (reference) against each fast backend.

    pytest benchmarks/bench_crop_views.py                  # CPU: B=8, level 3, size 64
    pytest benchmarks/bench_crop_views.py -m gpu   # GPU: paper scale B=56, level 3, size 448

Group `crop_views`; compare medians within one run (CPU timing here is noisy). Providers: the
torch op chain (crop_views_reference, eager), "torch.compile" (the same chain through inductor,
what a user would try before a hand-written kernel) and each kernel backend.

On a CPU-only machine the same command also runs a sweep, one group per case
(`crop_views-cpu-<B>x<level>x<size>-<dtype>-<layout>`): sizes 64 and 224, levels 3 and 2, fp32
and bf16, planar and channels_last. At B=8, level 3, size 224, fp32 the output is 46 MiB, which
glibc maps fresh on every call: about 11 ms of page faults that every provider pays.
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
CPU_SWEEP = [(shape, dtype, cl) for shape in ((8, 3, 64), (8, 3, 224), (8, 2, 224))
             for dtype in (torch.float32, torch.bfloat16) for cl in (False, True)
             if (shape, dtype, cl) != (CPU_SHAPE, torch.float32, False)]  # that one: above
DTYPE_IDS = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _case_id(shape, out_dtype, channels_last):
    b, level, size = shape
    return f"{b}x{level}x{size}-{DTYPE_IDS[out_dtype]}-{'cl' if channels_last else 'planar'}"


def _images(b, level, size, device):
    g = torch.Generator().manual_seed(0)
    n = level * size
    return torch.randint(0, 256, (b, n, n, 3), dtype=torch.uint8, generator=g).to(device)


def _run(benchmark, backend, device, shape, out_dtype=torch.float32, rounds=20,
         channels_last=False):
    b, level, size = shape
    images = _images(b, level, size, device)
    if backend == "torch.compile":
        mean, std = (torch.tensor(x, device=device) for x in (MEAN, STD))
        torch._dynamo.reset()  # each case compiles afresh, never hitting the recompile limit
        chain = torch.compile(crop_views_reference, fullgraph=True)
        view_fn = lambda: chain(images, level, size, mean, std, out_dtype, channels_last)  # noqa: E731
        forced = "torch"
    else:
        reason = _backend.unavailable_reason(backend, "crop_views", device)
        if reason:
            pytest.skip(reason)
        view_fn = lambda: crop_views(images, level, size, MEAN, STD, out_dtype=out_dtype,  # noqa: E731
                                     channels_last=channels_last)
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
                                    dtype=str(out_dtype), channels_last=channels_last)
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=2)
    finally:
        os.environ.pop(_backend.ENV_VAR, None)


@pytest.mark.benchmark(group="crop_views")
@pytest.mark.parametrize("backend", ["torch", "torch.compile", "cpp"])
def test_crop_views_cpu(benchmark, backend):
    _run(benchmark, backend, "cpu", CPU_SHAPE)


@pytest.mark.skipif(HAS_CUDA, reason="CPU-only sweep; on GPU hosts this file runs inside "
                    "gpu_check.sh's fixed time budget")
@pytest.mark.parametrize("backend", ["torch", "torch.compile", "cpp"])
@pytest.mark.parametrize("shape,out_dtype,channels_last", CPU_SWEEP,
                         ids=[_case_id(*case) for case in CPU_SWEEP])
def test_crop_views_cpu_sweep(benchmark, backend, shape, out_dtype, channels_last):
    benchmark.group = f"crop_views-cpu-{_case_id(shape, out_dtype, channels_last)}"
    _run(benchmark, backend, "cpu", shape, out_dtype, rounds=10, channels_last=channels_last)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.benchmark(group="crop_views")
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("backend", ["torch", "torch.compile", "cuda", "triton"])
def test_crop_views_gpu(benchmark, backend, out_dtype):
    _run(benchmark, backend, "cuda", GPU_SHAPE, out_dtype)
