"""CUDA-graph inference: replay equals eager (GPU), clear errors otherwise."""

import pytest
import torch

from lcnet_fast.cuda_graph import CudaGraphForward


def test_refuses_a_cpu_model(pair_factory):
    with pytest.raises(RuntimeError, match="CUDA device"):
        CudaGraphForward(pair_factory(5)[1].eval())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_replay_equals_eager(autocast_dtype, pair_factory):
    model = pair_factory(5)[1].cuda().eval()  # the shared tiny config: crop level 2 x 64 px
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
