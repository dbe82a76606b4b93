"""CUDA-graph inference: replay equals eager (GPU), clear errors otherwise."""

import pytest
import torch

import lcnet_fast
from lcnet_fast.cuda_graph import CudaGraphForward


def tiny_model(device="cpu"):
    torch.manual_seed(0)
    return (
        lcnet_fast.LCNet(
            5,
            backbone="test_resnet",
            crop_level=2,
            image_size=64,
            d_model=32,
            num_heads=4,
            num_layers=2,
            dim_feedforward=48,
        )
        .to(device)
        .eval()
    )


def test_refuses_a_cpu_model():
    with pytest.raises(RuntimeError, match="CUDA device"):
        CudaGraphForward(tiny_model())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_replay_equals_eager(autocast_dtype):
    model = tiny_model("cuda")
    runner = CudaGraphForward(model, batch_size=1, autocast_dtype=autocast_dtype)
    for seed in range(3):  # several replays with different inputs
        x = torch.randn(
            1, 3, 128, 128, device="cuda", generator=torch.Generator("cuda").manual_seed(seed)
        )
        with (
            torch.no_grad(),
            torch.autocast(
                "cuda", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
            ),
        ):
            expected = model(x)
        torch.testing.assert_close(runner(x), expected, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="captured shape"):
        runner(torch.randn(2, 3, 128, 128, device="cuda"))
