"""crop_views: cut decoded images into LCNet's Crop-Forwarding views, normalised.

images uint8 (B, H, W, 3) with H == W == level * size  ->  (B, V, 3, size, size):
view 0 is the whole image area-averaged down by `level` (avg_pool2d; the image itself
for level 1), views 1..level**2 the size x size tiles in row-major order; V = 1 for
level 1, else level**2 + 1. Every value is (x / 255 - mean[c]) / std[c], computed in
fp32 and rounded once to out_dtype (out_dtype float64: computed in float64, from float64
mean/std, by the torch reference; the kernels write fp32/fp16/bf16 only, so `auto` picks torch
for float64 and a forced cpp/cuda/triton raises).

Backends (lcnet_fast.ops._backend): "cpp" (csrc/cpu/crop_views.cpp) and "cuda"
(csrc/cuda/crop_views.cpp dispatching to the kernel in csrc/cuda/crop_views_kernel.cuh)
through the C++ op torch.ops.lcnet_fast.crop_views, "triton" (the op
lcnet_fast::crop_views_triton defined below; kernel and launcher in
lcnet_fast/ops/triton/crop_views.py) and "torch" (crop_views_reference below: the oracle and the
fallback). The output has no gradient (uint8 input), so no op registers autograd. Both custom
ops allocate through lcnet_fast/ops/_shapes.py, so their fake kernels give the real strides.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lcnet_fast.ops import _backend
from lcnet_fast.ops._shapes import crop_views_output, num_views

__all__ = ["crop_views", "crop_views_reference", "num_views"]

OP = "crop_views"
OUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
Stats = Sequence[float] | torch.Tensor


def _check_images(images, level, size) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"crop_views: images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(
            f"crop_views: images must be uint8 (decoded RGB, 0..255), got dtype "
            f"{images.dtype} with shape {tuple(images.shape)}"
        )
    if images.dim() != 4:
        raise ValueError(
            f"crop_views: images must have shape (B, H, W, 3), got rank "
            f"{images.dim()} shape {tuple(images.shape)}"
        )
    if images.shape[-1] != 3:
        raise ValueError(
            f"crop_views: images last dim must be 3 (RGB, channels last), got shape "
            f"{tuple(images.shape)}"
        )
    for name, value in (("level", level), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"crop_views: {name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"crop_views: {name} must be >= 1, got {value}")
    h, w = images.shape[1], images.shape[2]
    if h != w:
        raise ValueError(
            f"crop_views: images must be square (H == W), got shape {tuple(images.shape)}"
        )
    if h != level * size:
        raise ValueError(
            f"crop_views: images H == W must equal level * size = {level} * {size} "
            f"= {level * size}, got shape {tuple(images.shape)}"
        )


def _as_stats(
    name: str, value: Stats, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """mean/std as a (3,) tensor of dtype (float32, or float64 for float64 output) on
    `device`; validated."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 3:
            raise ValueError(
                f"crop_views: {name} must hold 3 values (one per RGB channel), got "
                f"shape {tuple(value.shape)}"
            )
        t = value.detach().reshape(3).to(device=device, dtype=dtype)
        if name == "std" and not torch.compiler.is_compiling() and bool((t == 0).any()):
            raise ValueError(f"crop_views: std must be non-zero, got {t.tolist()}")
        return t
    try:
        vals = [float(v) for v in value]
    except TypeError:
        raise TypeError(f"crop_views: {name} must be 3 floats or a tensor, got {value!r}") from None
    if len(vals) != 3:
        raise ValueError(
            f"crop_views: {name} must hold 3 values (one per RGB channel), got {len(vals)}: {vals}"
        )
    if name == "std" and any(v == 0 for v in vals):
        raise ValueError(f"crop_views: std must be non-zero, got {vals}")
    if torch.compiler.is_compiling():
        return torch.tensor(vals, dtype=dtype, device=device)
    return _stats_tensor(tuple(vals), device, dtype)


@functools.lru_cache(maxsize=64)
def _stats_tensor(
    vals: tuple[float, ...], device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Float stats as a (3,) tensor of dtype on `device`, built once per (values, device, dtype).
    Why cached: on a GPU a fresh torch.tensor is a host-to-device copy on every call (two per
    batch for DeviceViews), and one made during CUDA-graph capture would fail. Never mutated:
    every backend only reads it."""
    return torch.tensor(vals, dtype=dtype, device=device)


def crop_views_reference(
    images: torch.Tensor,
    level: int,
    size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    out_dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Plain PyTorch op chain (the oracle). mean/std: (3,) tensors. compute_dtype=float64
    gives the high-precision reference the tests measure every backend against."""
    b = images.shape[0]
    # A 0-dim divisor on images' device, not the Python scalar 255: CUDA divides by a CPU
    # scalar as a * (1/255), 1 ulp off true division for about half the byte values in fp32,
    # and the kernels (and CPU torch) divide exactly.
    x = images.permute(0, 3, 1, 2).to(compute_dtype) / torch.full(
        (), 255.0, dtype=compute_dtype, device=images.device
    )  # (B, 3, H, W)
    thumb = x if level == 1 else F.avg_pool2d(x, level)  # (B, 3, S, S)
    views = [thumb.unsqueeze(1)]
    if level > 1:
        tiles = x.reshape(b, 3, level, size, level, size).permute(0, 2, 4, 1, 3, 5)
        views.append(tiles.reshape(b, level * level, 3, size, size))
    v = torch.cat(views, dim=1)  # (B, V, 3, S, S)
    m = mean.to(compute_dtype).view(1, 1, 3, 1, 1)
    s = std.to(compute_dtype).view(1, 1, 3, 1, 1)
    v = ((v - m) / s).to(out_dtype)
    if channels_last:
        out = crop_views_output(images, level, size, out_dtype, True)
        out.copy_(v)
        return out
    return v


# --- the custom ops: fake kernels (no autograd: the output has no gradient) ----------------


def _fake(images, level, size, mean, std, out_dtype, channels_last):
    # explicit for the Triton op: tracing its launcher would run the interpreter on fake tensors
    return crop_views_output(images, level, size, out_dtype, channels_last)


if _backend.load_extension()[0] is not None and hasattr(torch.ops.lcnet_fast, OP):
    torch.library.register_fake(f"lcnet_fast::{OP}")(_fake)


@torch.library.triton_op(f"lcnet_fast::{OP}_triton", mutates_args=())
def _crop_views_triton(
    images: torch.Tensor,
    level: int,
    size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    out_dtype: torch.dtype,
    channels_last: bool,
) -> torch.Tensor:
    """The "triton" backend: same contract as torch.ops.lcnet_fast.crop_views (arguments
    validated by crop_views)."""
    # imported on first use: Triton reads TRITON_INTERPRET when the kernels are decorated
    from lcnet_fast.ops.triton import crop_views as kernels

    return kernels.forward(images, level, size, mean, std, out_dtype, channels_last)


_crop_views_triton.register_fake(_fake)


def crop_views(
    images: torch.Tensor,
    level: int,
    size: int,
    mean: Stats,
    std: Stats,
    out_dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """Normalised Crop-Forwarding views of uint8 (B, H, W, 3) images (see module doc).

    mean, std: 3 floats or tensors (per RGB channel, in 0..1 units).
    Returns (B, V, 3, size, size) of out_dtype (float32, float16, bfloat16, or float64: the
    torch reference, in float64); channels_last=True gives every view
    channels-last memory format (out.flatten(0, 1) is channels_last-contiguous).
    """
    _check_images(images, level, size)
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"crop_views: out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")
    # float64 output is computed in float64 (reference only); every other dtype in float32
    compute_dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    mean_t = _as_stats("mean", mean, images.device, compute_dtype)
    std_t = _as_stats("std", std, images.device, compute_dtype)
    channels_last = bool(channels_last)
    backend = _backend.choose_backend(OP, images.device.type, str(out_dtype))
    if backend in ("cpp", "cuda"):
        return torch.ops.lcnet_fast.crop_views(
            images, level, size, mean_t, std_t, out_dtype, channels_last
        )
    if backend == "triton":
        return _crop_views_triton(images, level, size, mean_t, std_t, out_dtype, channels_last)
    return crop_views_reference(
        images, level, size, mean_t, std_t, out_dtype, channels_last, compute_dtype
    )
