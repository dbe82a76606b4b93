"""Whole-forward CUDA graph capture for inference.

At single-image inference LCNet launches hundreds of small kernels (backbone layers, 4 attentions x
layers, AddNorms); on a fast GPU the launch overhead, not the arithmetic, sets the latency. A CUDA
graph records the whole forward once for a fixed input shape and replays it with one launch.

    runner = CudaGraphForward(model.eval(), batch_size=1)   # model on a CUDA device
    logits = runner(images)           # images: (1, 3, k*M, k*M) on that device

input_shape overrides the captured input's shape, e.g. (n, V, 3, M, M) for views already cut by
lcnet_fast.ops.crop_views (what lcnet_fast.Predictor captures on a GPU).

The input is copied into a static buffer, the graph replays, and a copy of the static output is
returned (so the caller may keep it across replays). Shapes and dtype are fixed at capture; another
shape is an error, not a silent re-capture.
"""

import torch
from torch import nn


class CudaGraphForward:
    def __init__(
        self,
        model: nn.Module,
        batch_size: int = 1,
        dtype: torch.dtype = torch.float32,
        autocast_dtype: torch.dtype | None = None,
        warmup_iterations: int = 3,
        input_shape: tuple[int, ...] | None = None,
    ):
        device = next(model.parameters()).device
        if device.type != "cuda":
            raise RuntimeError(
                f"CUDA graph capture needs the model on a CUDA device, it is on {device}"
            )
        if model.training:
            raise RuntimeError("CUDA graph capture is for inference: call model.eval() first")
        if input_shape is None:
            side = model.crop_level * model.image_size
            input_shape = (batch_size, 3, side, side)
        self.model, self.autocast_dtype = model, autocast_dtype
        self.static_input = torch.zeros(input_shape, device=device, dtype=dtype)
        # Warm up on a side stream: lazy initialisation (cuBLAS handles, Triton compilation,
        # allocator pools) must not happen during capture.
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(warmup_iterations):
                self._forward()
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.static_output = self._forward()

    def _forward(self) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.model(self.static_input)
        with torch.autocast("cuda", dtype=self.autocast_dtype):
            return self.model(self.static_input)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        expected = self.static_input
        if images.shape != expected.shape or images.device != expected.device:
            raise ValueError(
                f"images must be {tuple(expected.shape)} on {expected.device} (the captured "
                f"shape), got {tuple(images.shape)} on {images.device}"
            )
        expected.copy_(images)
        self.graph.replay()
        return self.static_output.clone()
