"""Where and how a model runs: device choice, precision (autocast), and the on-device
preprocessing that turns uint8 image batches into the model's Crop-Forwarding views.

Shared by inference (lcnet_fast/inference.py, predict), evaluation and training: no training code
and no file access here, so ``import lcnet_fast`` needs nothing from lcnet_fast/engine. Imports
only torch and, when called, the crop_views op.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: the config module is not needed to run this one
    from lcnet_fast.config import DataConfig, ModelConfig

__all__ = ["DeviceViews", "autocast", "pick_device", "resolve_precision"]


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when a GPU is visible, else cpu; anything else as given."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CUDA, fp32 elsewhere (CPU bf16 autocast is slow on most CPUs)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """bf16 autocast on `device` for precision "bf16"; a no-op context for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class DeviceViews:
    """uint8 (B, 3, S, S) loader batches -> normalised float32 (B, V, 3, M, M) Crop-Forwarding
    views on the batch's device, in one lcnet_fast.ops.crop_views pass (C++ on CPU, CUDA on GPU).

    Equal, to float32 rounding, to build_transforms' float pipeline followed by the model's own
    split (crop_views averages the thumbnail's bytes exactly, then normalises)."""

    def __init__(self, crop_level: int, image_size: int, mean, std):
        self.level, self.size = int(crop_level), int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)

    @classmethod
    def from_config(cls, data: DataConfig, model: ModelConfig) -> DeviceViews:
        return cls(*model.view_geometry(), data.mean, data.std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from lcnet_fast.ops.crop_views import crop_views

        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise TypeError(
                f"DeviceViews takes uint8 (B, 3, S, S) image batches (transforms_for's output), "
                f"got dtype {images.dtype} shape {tuple(images.shape)}"
            )
        # (B, S, S, 3) strided view: crop_views reads any strides, no copy
        return crop_views(images.permute(0, 2, 3, 1), self.level, self.size, self.mean, self.std)
