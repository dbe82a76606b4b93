"""Image transforms: square resize to the Crop-Forwarding input size, train augmentation,
normalisation.

LCNet's Crop-Forwarding cuts a ``crop_level * image_size`` square image into views of
``image_size``, so every image is resized (without keeping aspect, as in the paper's code) to that
square. Augmentation, as the paper's code defines it: resize -> horizontal flip -> RandAugment (on
uint8, where it is defined) -> to float in [0, 1] -> Cutout -> Normalize. Built on
``torchvision.transforms.v2``; the input may be a uint8 ``(3, H, W)`` tensor (what the datasets
return) or a PIL image.

Where the augmentation runs (:class:`ResizeAugment`). Resizing first makes flip + RandAugment
run on the output square: at crop level 3 x 448 that is a 1344-px image, about 6x the pixels of a
640x480 COCO photo, and the train transform then costs 11-14x the evaluation transform per image
(decode included; BENCHMARKS.md). So the train transform runs flip + RandAugment at whichever
resolution has fewer pixels: on the source image when it has fewer pixels than the output (then
resizes), else on the resized image (the order above): 2.1-2.3x the evaluation transform there.
Chosen over augmenting on the device because it keeps the loader's contract (uint8 square out of
the workers) and needs no GPU; chosen over a fixed intermediate square because it never resamples
twice.

What is the same when it runs on the source (tests/data/test_transforms_resolution.py):

- every random draw, in the same order (flip, RandAugment's op and sign draws, Cutout), so a
  seed picks the same flip, the same ops with the same magnitudes and the same Cutout hole;
- the geometric ops are the same transforms of the output square. RandAugment's translate is in
  pixels of the image it sees and its rotate/shear are angles, so running it as is on a
  non-square source and then stretching to the square would change them (a 9 degree rotation of
  a 4:3 photo, stretched to the square, turns horizontal lines by 12 degrees, vertical ones by 7).
  Instead each geometric op's inverse matrix is computed for the output square (exactly as
  ``F.affine``/``F.rotate`` would) and conjugated by the source->output scale, then sampled on
  the source grid (nearest, fill 0, as RandAugment does): resize after it = the op after resize,
  up to resampling;
- the horizontal flip commutes with the resize (bitwise, at every size tried); Cutout stays
  after the resize (a fill of a square whose side is a fraction of the output side, drawn in
  output pixels as before).

What differs (resolution only, not the distribution of parameters): pixel ops (Solarize,
Posterize, Brightness, Color) are applied before rather than after the bilinear upsampling, so
edges they create are interpolated; Equalize's histogram and Contrast's mean are taken over the
source pixels instead of their interpolation; nearest-neighbour sampling of the geometric ops is
at source pixel scale; Sharpness's 3x3 kernel spans 3 source pixels, i.e. ``3 * scale`` output
pixels (about 6-8 at COCO -> 1344): it blurs/sharpens the photo's real detail, where on the
upsampled image it acted on interpolated pixels that hold little detail at that scale. On a
photo-like 640x480 image at 1344 px the outputs for the same seed differ by at most ~1.3 grey
levels on average over 16x16 blocks; hard edges that cross Solarize's threshold differ most (on
an 8-px checkerboard, Solarize draws moved that channel's mean by ~11 of 255). All of these
grow with the upscale factor: a thumbnail blown up 10x is augmented at thumbnail scale. Sources
with at least as many pixels as the output (and flip-only or no augmentation) use the old order
and give exactly the old result for the same RNG state, e.g. the synthetic data, whose images
are the output size.

Note for the synthetic dataset: its classes are defined by colour, so RandAugment's colour ops
(Solarize, Posterize, Color, ...) change what an image shows; use ``augment={"randaugment": False,
"cutout": False}`` there (flip only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

# The one private torchvision helper used: the inverse affine matrix that F.affine and F.rotate
# build (same function, same arguments below), so the geometric ops cannot drift from
# torchvision's; tests/data/test_transforms.py checks them bitwise against F.affine/F.rotate.
from torchvision.transforms.v2.functional._geometry import _get_inverse_affine_matrix

__all__ = [
    "AugmentConfig",
    "Cutout",
    "RandAugment",
    "ResizeAugment",
    "build_transforms",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

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
    # True: always resize first, then flip + RandAugment on the output square (the paper code's
    # order; the slow one when the source is smaller than the output, see the module docstring)
    resize_first: bool = False

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


_GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _inverse_matrix(op: str, magnitude: float, height: int, width: int) -> list[float]:
    """The inverse affine matrix (output pixel -> input pixel, coordinates centred on the image)
    that torchvision's RandAugment applies for ``op`` on a ``height x width`` image: the arguments
    of its ``F.affine``/``F.rotate`` calls, passed through the function those use."""
    zero = [0.0, 0.0]
    if op in ("ShearX", "ShearY"):  # F.affine(..., shear=[deg, 0] or [0, deg], center=[0, 0])
        deg = math.degrees(math.atan(magnitude))
        shear = [deg, 0.0] if op == "ShearX" else [0.0, deg]
        return _get_inverse_affine_matrix([-0.5 * width, -0.5 * height], 0.0, zero, 1.0, shear)
    if op in ("TranslateX", "TranslateY"):  # F.affine(..., translate=[int(m), 0] or [0, int(m)])
        t = float(int(magnitude))
        return _get_inverse_affine_matrix(
            zero, 0.0, [t, 0.0] if op == "TranslateX" else [0.0, t], 1.0, zero
        )
    if op == "Rotate":  # F.rotate(angle=m): the affine matrix of -m
        return _get_inverse_affine_matrix(zero, -(magnitude % 360), zero, 1.0, zero)
    raise ValueError(f"not a geometric op: {op}")


def _warp(image: torch.Tensor, matrix: list[float], mode: str) -> torch.Tensor:
    """Sample ``image`` at ``matrix`` (inverse, centred pixel coordinates) on its own grid, fill 0:
    torchvision's ``_affine_grid`` + ``_apply_grid_transform`` (fill None) in public torch ops."""
    h, w = image.shape[-2:]
    fp = image.is_floating_point()
    dtype = image.dtype if fp else torch.float32
    theta = torch.tensor(matrix, dtype=dtype).reshape(1, 2, 3)
    base = torch.empty(1, h, w, 3, dtype=dtype)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2).div_(torch.tensor([0.5 * w, 0.5 * h], dtype=dtype))
    grid = base.view(1, h * w, 3).bmm(scaled).view(1, h, w, 2)
    flat = image.reshape(-1, *image.shape[-3:])
    src = flat if fp else flat.to(dtype)
    out = torch.nn.functional.grid_sample(
        src,
        grid.expand(src.shape[0], -1, -1, -1),
        mode=mode,
        padding_mode="zeros",
        align_corners=False,
    )
    out = out if fp else out.round_().to(image.dtype)
    return out.reshape(image.shape)


class RandAugment(v2.RandAugment):
    """torchvision's ``v2.RandAugment`` (called as a module it is exactly that), plus
    :meth:`before_resize`: the same draws and ops, applied to an image that is resized to ``size``
    afterwards, so that resize + this = today's resize-then-RandAugment up to resampling.

    Only the default fill (0) is supported: that is what :func:`build_transforms` uses.
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9) -> None:
        super().__init__(num_ops=num_ops, magnitude=magnitude)

    def before_resize(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """RandAugment for an image (tensor, ``(..., C, H, W)``) that is resized to ``size`` =
        (height, width) next. Random draws as in ``v2.RandAugment.forward`` (op, then sign), and
        the magnitudes computed for ``size``, the image RandAugment would have seen."""
        out_h, out_w = size
        for _ in range(self.num_ops):
            op, (magnitudes_fn, signed) = self._get_random_item(self._AUGMENTATION_SPACE)
            magnitudes = magnitudes_fn(self.num_magnitude_bins, out_h, out_w)
            if magnitudes is not None:
                magnitude = float(magnitudes[self.magnitude])
                if signed and torch.rand(()) <= 0.5:
                    magnitude *= -1
            else:
                magnitude = 0.0
            image = self._apply_before_resize(image, op, magnitude, size)
        return image

    def _apply_before_resize(
        self, image: torch.Tensor, op: str, magnitude: float, size: tuple[int, int]
    ) -> torch.Tensor:
        if op not in _GEOMETRIC_OPS:  # per-pixel or whole-image statistics: as torchvision does
            return self._apply_image_or_video_transform(
                image, op, magnitude, interpolation=self.interpolation, fill=self._fill
            )
        if op == "Rotate" and magnitude % 360 == 0:  # F.rotate's fast path: a copy
            return image.clone()
        out_h, out_w = size
        h, w = image.shape[-2:]
        sx, sy = out_w / w, out_h / h
        # Output coordinates = S @ source coordinates, S = diag(sx, sy) (centred, pixel-centre
        # exact for an align_corners=False resize), so the source-grid matrix is S^-1 M S.
        a, b, c, d, e, f = _inverse_matrix(op, magnitude, out_h, out_w)
        matrix = [a, b * sy / sx, c / sx, d * sx / sy, e, f / sy]
        mode = v2.InterpolationMode(self.interpolation).value  # "nearest" by default
        out = _warp(image.as_subclass(torch.Tensor), matrix, mode)
        return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.Image) else out


class ResizeAugment(torch.nn.Module):
    """Resize to ``size`` + horizontal flip + RandAugment, the augmentation run at whichever of
    the source and the output has fewer pixels (see the module docstring). Same random draws in
    the same order either way; the old order (resize first) whenever the source has at least the
    output's pixels or RandAugment is off, which gives exactly the old result. Takes a tensor
    image ``(..., C, H, W)``: :func:`build_transforms` puts ``v2.ToImage`` before it."""

    def __init__(
        self,
        size: tuple[int, int],
        hflip: float = 0.0,
        randaugment: RandAugment | None = None,
        resize_first: bool = False,
    ) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.resize_first = resize_first
        self.resize = v2.Resize(self.size, antialias=True)
        self.hflip = v2.RandomHorizontalFlip(p=hflip) if hflip > 0 else None
        self.randaugment = randaugment

    def augments_before_resize(self, height: int, width: int) -> bool:
        return (
            not self.resize_first
            and self.randaugment is not None
            and height * width < self.size[0] * self.size[1]
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not self.augments_before_resize(*image.shape[-2:]):
            image = self.resize(image)
            if self.hflip is not None:
                image = self.hflip(image)
            if self.randaugment is not None:
                image = self.randaugment(image)
            return image
        if self.hflip is not None:
            image = self.hflip(image)
        image = self.randaugment.before_resize(image, self.size)
        return self.resize(image)


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
    cfg = AugmentConfig.resolve(augment) if train else None
    if cfg is None:
        steps: list = [v2.ToImage(), v2.Resize((side, side), antialias=True)]
    else:
        randaugment = (
            RandAugment(num_ops=cfg.randaugment_num_ops, magnitude=cfg.randaugment_magnitude)
            if cfg.randaugment
            else None
        )
        steps = [
            v2.ToImage(),
            ResizeAugment((side, side), cfg.hflip, randaugment, cfg.resize_first),
        ]
    if output == "uint8":
        if cfg is not None and cfg.cutout:
            steps.append(Cutout(cfg.cutout_size, cfg.cutout_p, round(cfg.cutout_fill * 255)))
        return v2.Compose(steps)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if cfg is not None and cfg.cutout:
        steps.append(Cutout(cfg.cutout_size, cfg.cutout_p, cfg.cutout_fill))
    steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)
