"""Image transforms: square resize to the Crop-Forwarding input size, train augmentation,
normalisation.

LCNet's Crop-Forwarding cuts a ``crop_level * image_size`` square image into views of
``image_size``, so every image is resized (without keeping aspect, as in the paper's code) to that
square first. Augmentation order: resize -> horizontal flip -> RandAugment (on uint8, where it is
defined) -> to float in [0, 1] -> Cutout -> Normalize. Built on ``torchvision.transforms.v2``; the
input may be a uint8 ``(3, H, W)`` tensor (what the datasets return) or a PIL image.

Note for the synthetic dataset: its classes are defined by colour, so RandAugment's colour ops
(Solarize, Posterize, Color, ...) change what an image shows; use ``augment={"randaugment": False,
"cutout": False}`` there (flip only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torchvision.transforms import v2

__all__ = ["AugmentConfig", "Cutout", "build_transforms", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    """Train-time augmentation switches. A probability or flag of 0/False turns a step off."""

    hflip: float = 0.5  # probability of a horizontal flip
    randaugment: bool = True
    randaugment_num_ops: int = 2
    randaugment_magnitude: int = 9
    cutout: bool = True
    cutout_size: float = 0.5  # side of the square hole, as a fraction of the image side
    cutout_p: float = 0.5  # probability of applying it
    cutout_fill: float = 0.5  # value written into the hole, on the [0, 1] scale before Normalize

    @classmethod
    def resolve(cls, augment: Any) -> AugmentConfig | None:
        """None/True -> defaults, False -> no augmentation, dict -> overrides, AugmentConfig ->
        itself."""
        if augment is None or augment is True:
            return cls()
        if augment is False:
            return None
        if isinstance(augment, cls):
            return augment
        if isinstance(augment, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(augment) - known)
            if unknown:
                raise ValueError(f"augment: unknown option(s) {unknown}; known: {sorted(known)}")
            return cls(**augment)
        raise TypeError(
            "augment must be None, a bool, a dict or an AugmentConfig, "
            f"got {type(augment).__name__}"
        )

    def as_dict(self) -> dict:
        return asdict(self)


class Cutout(torch.nn.Module):
    """Fill one random square of side ``size * min(H, W)`` with ``fill`` (probability ``p``).

    The square's centre is uniform over the image and the square is clipped at the border (DeVries &
    Taylor 2017), so the hole can be smaller than ``size`` near edges.
    """

    def __init__(self, size: float = 0.5, p: float = 0.5, fill: float = 0.5) -> None:
        super().__init__()
        if not 0 < size <= 1:
            raise ValueError(f"Cutout size must be in (0, 1], got {size}")
        if not 0 <= p <= 1:
            raise ValueError(f"Cutout p must be in [0, 1], got {p}")
        self.size, self.p, self.fill = size, p, fill

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.p == 0 or torch.rand(()) >= self.p:
            return image
        h, w = image.shape[-2:]
        side = max(1, int(round(self.size * min(h, w))))
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(0, cy - side // 2), min(h, cy - side // 2 + side)
        x0, x1 = max(0, cx - side // 2), min(w, cx - side // 2 + side)
        image = image.clone()
        image[..., y0:y1, x0:x1] = self.fill
        return image


def build_transforms(
    train: bool,
    crop_level: int,
    image_size: int,
    augment: Any = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    output: str = "float",
) -> v2.Compose:
    """The pipeline giving a float32 ``(3, crop_level*image_size, crop_level*image_size)`` tensor.

    ``output="uint8"`` stops before the float conversion: a uint8 ``(3, S, S)`` tensor (Cutout
    then fills ``round(fill * 255)``), for batches that ``lcnet_fast.ops.crop_views`` scales,
    normalises and cuts on the device in one pass (what the train and evaluate drivers do: a
    quarter of the bytes to move and no float work in the loader workers).

    Args:
        train: add augmentation (per ``augment``); evaluation pipelines never augment.
        crop_level: Crop-Forwarding grid side (1 = no crops).
        image_size: side of one view; the output side is ``crop_level * image_size``.
        augment: None/True (defaults), False (off), a dict of :class:`AugmentConfig` fields or an
            :class:`AugmentConfig`.
        mean, std: per-channel normalisation on the [0, 1] scale (ImageNet by default).
    """
    if int(crop_level) < 1:
        raise ValueError(f"crop_level must be >= 1, got {crop_level}")
    if int(image_size) < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if output not in ("float", "uint8"):
        raise ValueError(f'output must be "float" or "uint8", got {output!r}')
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"mean and std need 3 values each and std > 0, got mean={mean}, std={std}")
    side = int(crop_level) * int(image_size)
    steps: list = [v2.ToImage(), v2.Resize((side, side), antialias=True)]
    cfg = AugmentConfig.resolve(augment) if train else None
    if cfg is not None and cfg.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=cfg.hflip))
    if cfg is not None and cfg.randaugment:
        steps.append(
            v2.RandAugment(num_ops=cfg.randaugment_num_ops, magnitude=cfg.randaugment_magnitude)
        )
    if output == "uint8":
        if cfg is not None and cfg.cutout:
            steps.append(Cutout(cfg.cutout_size, cfg.cutout_p, round(cfg.cutout_fill * 255)))
        return v2.Compose(steps)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if cfg is not None and cfg.cutout:
        steps.append(Cutout(cfg.cutout_size, cfg.cutout_p, cfg.cutout_fill))
    steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)
