"""Crop-Forwarding (paper section 3.3): cut a (k*M)-square image into the views the backbone sees.

View 0 is the whole image brought to backbone resolution M by area averaging (avg_pool2d with
kernel k), views 1..k^2 are the M x M tiles in row-major order. At crop level 1 there is a single
view, the image itself. (The paper's public code forwards the image twice at level 1 — once as
"the global view" and once as "the only crop"; both views are identical tensors, so the second adds
tokens that carry no new information. We keep one.)
"""

import torch
import torch.nn.functional as F


def num_views(level: int) -> int:
    """Views per image at a crop level: the global view plus level**2 tiles (1 at level 1)."""
    if level < 1:
        raise ValueError(f"crop level must be >= 1, got {level}")
    return 1 if level == 1 else level * level + 1


def check_crop_input(images: torch.Tensor, level: int) -> int:
    """Validate a (B, 3, k*M, k*M) float batch and return the view size M."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be 4-D (B, 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    if level < 1:
        raise ValueError(f"crop level must be >= 1, got {level}")
    height, width = images.shape[-2:]
    if height != width or height % level != 0:
        raise ValueError(
            f"images must be square with a side divisible by the crop level {level} "
            f"(k*M x k*M), got {height}x{width}"
        )
    return height // level


def crop_views(images: torch.Tensor, level: int) -> list[torch.Tensor]:
    """Return the list of views, each (B, 3, M, M): [global view, tile(0,0), tile(0,1), ...]."""
    size = check_crop_input(images, level)
    if level == 1:
        return [images]
    views = [F.avg_pool2d(images, kernel_size=level)]
    for row in range(level):
        for col in range(level):
            views.append(images[:, :, row * size : (row + 1) * size, col * size : (col + 1) * size])
    return views
