"""LCNet forward+backward and the LLCD stack: reference vs fast (same weights), one group each.

    pytest benchmarks/bench_lcnet.py --benchmark-json=lcnet.json
"""
import pytest
import torch

from benchmarks.models import (CPU_BATCH, CPU_LLCD, CPU_MODEL, PAPER_LLCD, llcd_inputs, llcd_stacks,
                               model_pair, run_stack)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def models():
    return dict(zip(("reference", "fast"), model_pair(device=DEVICE, **CPU_MODEL)))


@pytest.mark.benchmark(group="lcnet_train_step")
@pytest.mark.parametrize("kind", ["reference", "fast"])
def test_lcnet_forward_backward(benchmark, models, kind):
    model = models[kind].train()
    side = CPU_MODEL["crop_level"] * CPU_MODEL["image_size"]
    images = torch.randn(CPU_BATCH, 3, side, side, device=DEVICE)

    def step():
        model.zero_grad(set_to_none=True)
        model(images).sum().backward()

    benchmark.pedantic(step, rounds=8, warmup_rounds=1)


LLCD_SHAPE = PAPER_LLCD if DEVICE == "cuda" else CPU_LLCD
LLCD_DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32


@pytest.fixture(scope="module")
def stacks():
    reference, fast = llcd_stacks(LLCD_SHAPE, DEVICE, LLCD_DTYPE)
    compiled = torch.compile(reference) if DEVICE == "cuda" else None
    return {"reference": reference, "fast": fast, "compiled_reference": compiled}


@pytest.mark.benchmark(group="llcd_stack")
@pytest.mark.parametrize("kind", ["reference", "compiled_reference", "fast"])
def test_llcd_stack_forward_backward(benchmark, stacks, kind):
    stack = stacks[kind]
    if stack is None:
        pytest.skip("torch.compile of the reference is only benchmarked on GPU (CPU compile is minutes)")
    q, img, graph = llcd_inputs(LLCD_SHAPE, DEVICE, LLCD_DTYPE)

    def step():
        run_stack(stack, q, img, graph).float().sum().backward()
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
