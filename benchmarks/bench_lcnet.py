"""LCNet forward+backward and the LLCD stack: reference vs fast (same weights), one group each.

pytest benchmarks/bench_lcnet.py --benchmark-json=lcnet.json
"""

import pytest
import torch

from benchmarks.models import (
    CPU_BATCH,
    CPU_LLCD,
    CPU_MODEL,
    PAPER_LLCD,
    llcd_inputs,
    llcd_stacks,
    model_pair,
    run_stack,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def models():
    return dict(zip(("reference", "fast"), model_pair(device=DEVICE, **CPU_MODEL), strict=True))


@pytest.mark.benchmark(group="lcnet_train_step")
@pytest.mark.parametrize("kind", ["reference", "fast"])
def test_lcnet_forward_backward(benchmark, models, kind):
    model = models[kind].train()
    side = CPU_MODEL["crop_level"] * CPU_MODEL["image_size"]
    images = torch.randn(CPU_BATCH, 3, side, side, device=DEVICE)

    def step():
        model.zero_grad(set_to_none=True)
        model(images).sum().backward()
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=8, warmup_rounds=1)


LLCD_SHAPE = PAPER_LLCD if DEVICE == "cuda" else CPU_LLCD
LLCD_DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32


@pytest.fixture(scope="module")
def stacks():
    reference, fast = llcd_stacks(LLCD_SHAPE, DEVICE, LLCD_DTYPE)
    compiled = None
    if DEVICE == "cuda":
        # Layer by layer: a compiled ModuleList is not iterable (run_stack loops over it), and
        # the layers share one code object, so inductor compiles one graph (forward and
        # backward) and reuses it for every layer instead of one six-layer graph.
        compiled = torch.nn.ModuleList(torch.compile(layer) for layer in reference)
    return {"reference": reference, "fast": fast, "compiled_reference": compiled}


@pytest.mark.benchmark(group="llcd_stack")
@pytest.mark.parametrize("kind", ["reference", "compiled_reference", "fast"])
def test_llcd_stack_forward_backward(benchmark, stacks, kind):
    stack = stacks[kind]
    if stack is None:
        pytest.skip(
            "torch.compile of the reference is only benchmarked on GPU (CPU compile is minutes)"
        )
    q, img, graph = llcd_inputs(LLCD_SHAPE, DEVICE, LLCD_DTYPE)

    def step():
        run_stack(stack, q, img, graph).float().sum().backward()
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=10, warmup_rounds=2)


# --- GPU only: the paper-scale model (timm TResNet-L, random weights: the GPU box has no network)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PAPER_MODEL = dict(
    backbone="tresnet_l",
    crop_level=3,
    image_size=448,
    d_model=768,
    num_heads=8,
    num_layers=6,
    dim_feedforward=2048,
    dropout=0.1,
)


@pytest.fixture(scope="module")
def paper_models():
    return dict(
        zip(
            ("reference", "fast"),
            model_pair(num_classes=80, device="cuda", **PAPER_MODEL),
            strict=True,
        )
    )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    "mode", ["reference", "fast_eager", "fast_cuda_graph", "uint8_crop_views_cuda_graph"]
)
@pytest.mark.benchmark(group="single_image_inference")
def test_single_image_inference_gpu(benchmark, paper_models, mode):
    """uint8_crop_views_cuda_graph = lcnet_fast.Predictor's GPU path after the CPU resize: the
    uint8 image normalised and cut by crop_views, then the captured forward on the views."""
    from lcnet_fast.cuda_graph import CudaGraphForward
    from lcnet_fast.ops import crop_views

    model = paper_models["reference" if mode == "reference" else "fast"].eval()
    x = torch.randn(1, 3, 3 * 448, 3 * 448, device="cuda")
    if mode == "fast_cuda_graph":
        run = CudaGraphForward(model, batch_size=1, autocast_dtype=torch.bfloat16)
        step = lambda: run(x)  # noqa: E731
    elif mode == "uint8_crop_views_cuda_graph":
        pixels = torch.randint(0, 256, (1, 3 * 448, 3 * 448, 3), dtype=torch.uint8, device="cuda")
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        run = CudaGraphForward(
            model, autocast_dtype=torch.bfloat16, input_shape=(1, 10, 3, 448, 448)
        )
        step = lambda: run(crop_views(pixels, 3, 448, mean, std))  # noqa: E731
    else:

        def step():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                return model(x)

    def timed():
        step()
        torch.cuda.synchronize()

    benchmark.pedantic(timed, rounds=20, warmup_rounds=3)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("views_per_call", ["one_call", "per_view"])
@pytest.mark.benchmark(group="backbone_one_call_train_step")
def test_one_call_backbone_train_step_gpu(benchmark, paper_models, views_per_call):
    model = paper_models["fast"].train()
    batch = 8
    model.max_views_per_call = None if views_per_call == "one_call" else batch
    x = torch.randn(batch, 3, 3 * 448, 3 * 448, device="cuda")

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).float().sum()
        loss.backward()
        torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    model.max_views_per_call = None
