"""Crop-Forwarding views of a float batch, without a Python loop over crops.

(B, 3, k*M, k*M) -> (B, V, 3, M, M): view 0 = avg_pool2d(image, k) (area downsampling), views
1..k^2 = the M x M tiles in row-major order; at level 1 the single view is the image itself. The
tiles are a reshape + permute of the input (one copy), so every view of every image can go through
the backbone in one call. For decoded uint8 images, `lcnet_fast.ops.crop_views` does the same cut
fused with normalisation in one pass; LCNet takes its (B, V, 3, M, M) output directly
(`check_views`), which is how lcnet_fast.Predictor feeds it.
"""

import torch
import torch.nn.functional as F


def num_views(level: int) -> int:
    """Views per image: the global view plus level**2 tiles (a single view at level 1)."""
    if level < 1:
        raise ValueError(f"crop level must be >= 1, got {level}")
    return 1 if level == 1 else level * level + 1


def check_images(images: torch.Tensor, level: int) -> int:
    """Validate a (B, 3, k*M, k*M) floating batch; return the view size M."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be 4-D (B, 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(
            f"images must be a floating-point tensor (normalised), got dtype {images.dtype}"
        )
    if level < 1:
        raise ValueError(f"crop level must be >= 1, got {level}")
    height, width = images.shape[-2:]
    if height != width or height % level != 0:
        raise ValueError(
            f"images must be square with a side divisible by the crop level {level} "
            f"(k*M x k*M), got {height}x{width}"
        )
    return height // level


def split_views(images: torch.Tensor, level: int) -> torch.Tensor:
    """(B, C, k*M, k*M) -> (B, V, C, M, M), views ordered [global, tile(0,0), tile(0,1), ...]."""
    size = check_images(images, level)
    if level == 1:
        return images.unsqueeze(1)
    batch, channels = images.shape[:2]
    global_view = F.avg_pool2d(images, kernel_size=level).unsqueeze(1)
    tiles = (
        images.reshape(batch, channels, level, size, level, size)
        .permute(0, 2, 4, 1, 3, 5)  # (B, row, col, C, M, M)
        .reshape(batch, level * level, channels, size, size)
    )
    return torch.cat([global_view, tiles], dim=1)


def check_views(views: torch.Tensor, level: int) -> None:
    """Validate already-cut views (B, V, 3, M, M), e.g. from lcnet_fast.ops.crop_views."""
    if not views.is_floating_point():
        raise TypeError(
            f"views must be a floating-point tensor (normalised), got dtype {views.dtype}"
        )
    size = views.shape[-1]
    if views.dim() != 5 or tuple(views.shape[1:]) != (num_views(level), 3, size, size):
        raise ValueError(
            f"views must be (B, V={num_views(level)}, 3, M, M) for crop level {level}, got "
            f"shape {tuple(views.shape)}"
        )
