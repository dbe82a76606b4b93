"""The shared shape of every multi-label dataset in this package.

Readers (COCO, VOC, CSV, folder) only differ in how they turn an annotation file into a list of
image paths and a label matrix; everything after that -- loading, bad-image handling, transforms,
the ``(image, label_vector)`` contract -- lives here once so the readers stay small and behave
alike.

Label convention (all datasets): ``labels`` is an ``(n, C)`` int8 tensor, 1 = present, 0 = absent,
-1 = ignored (e.g. VOC "difficult"). ``__getitem__`` returns the label row as float32 with -1 kept;
losses and metrics decide what -1 means.

Default image type: a uint8 tensor of shape ``(3, H, W)`` (RGB), which is what
``torchvision.transforms.v2`` and :func:`lcnet_fast.data.transforms.build_transforms` expect.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from lcnet_fast.errors import DatasetError, ImageLoadError  # re-exported: their old home

__all__ = ["DatasetError", "ImageLoadError", "MultiLabelDataset", "load_image"]


def load_image(path: str) -> torch.Tensor:
    """Read an image file as an RGB uint8 tensor ``(3, H, W)``; raise :class:`ImageLoadError` naming
    it.

    PIL is used (not ``torchvision.io``) because it reads every format Pillow knows and its errors
    are catchable; ``img.load()`` forces the full decode so truncated files fail here, not later.
    """
    arr = decode_image(path)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_image(path: str) -> np.ndarray:
    """The decoding half of :func:`load_image`: an RGB uint8 ``(H, W, 3)`` array, or
    :class:`ImageLoadError` naming the file. Uses no torch (safe in forked worker processes)."""
    if not os.path.isfile(path):
        raise ImageLoadError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
    ) as exc:
        raise ImageLoadError(f"cannot read image {path}: {exc}") from exc


def _check_labels(labels: torch.Tensor, n: int, c: int, where: str) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.shape != (n, c):
        raise DatasetError(f"{where}: labels must have shape ({n}, {c}), got {tuple(labels.shape)}")
    bad = ~((labels == 1) | (labels == 0) | (labels == -1))
    if bool(bad.any()):
        r, col = (int(v) for v in bad.nonzero()[0])
        raise DatasetError(
            f"{where}: label values must be 1, 0 or -1; "
            f"row {r}, column {col} is {labels[r, col].item()}"
        )
    return labels.to(torch.int8)


class MultiLabelDataset(Dataset):
    """A list of image files with a label matrix.

    Args:
        paths: one image path per row of ``labels``.
        labels: ``(n, C)`` values in {1, 0, -1}.
        classes: the C class names, in column order.
        transform: applied to the uint8 ``(3, H, W)`` image tensor; ``None`` returns it unchanged.
        skip_bad_images: if False (default), a bad image raises :class:`ImageLoadError`. If True,
            ``__getitem__`` skips it and returns the next loadable image (wrapping around); each
            skipped path is recorded in ``self.skipped_images`` (a set, so ``len()`` is the count).
            Note that in DataLoader worker processes this set lives in the worker's copy: count
            with what :meth:`get_sample` returns (the trainer and evaluate do), or call
            :meth:`verify` in the main process first for a label matrix without the bad files.
        name: used in error messages.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: torch.Tensor,
        classes: Sequence[str],
        transform: Callable | None = None,
        skip_bad_images: bool = False,
        name: str = "dataset",
    ) -> None:
        self.name = name
        self.classes = list(classes)
        if len(set(self.classes)) != len(self.classes):
            dup = sorted({c for c in self.classes if self.classes.count(c) > 1})
            raise DatasetError(f"{name}: duplicate class names {dup}")
        if len(paths) == 0:
            raise DatasetError(f"{name}: contains no images")
        if not self.classes:
            raise DatasetError(f"{name}: has no classes")
        self.paths = [str(p) for p in paths]
        self.labels = _check_labels(labels, len(self.paths), len(self.classes), name)
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.skipped_images: set[str] = set()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)

    def image_path(self, index: int) -> str:
        return self.paths[index]

    def load(self, index: int) -> torch.Tensor:
        """The raw uint8 image of row ``index`` (no transform)."""
        return load_image(self.paths[index])

    def __getitem__(self, index: int):
        image, label, _ = self.get_sample(index)
        return image, label

    def get_sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        """``(image, label, skipped)``: ``__getitem__``'s pair plus the paths of the unreadable
        images skipped to produce it (``()`` when image ``index`` itself was read). With
        ``skip_bad_images`` a non-empty ``skipped`` means the sample is a stand-in (the next
        readable image), not image ``index``. This is how a count of skipped images crosses
        DataLoader worker processes: it travels with the samples (``skipped_images`` only grows
        in the worker's copy of the dataset)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} images")
        index %= n
        skipped: list[str] = []
        for step in range(n):
            i = (index + step) % n
            try:
                image = self.load(i)
            except ImageLoadError:
                if not self.skip_bad_images:
                    raise
                skipped.append(self.image_path(i))
                self.skipped_images.add(self.image_path(i))
                continue
            if self.transform is not None:
                image = self.transform(image)
            return image, self.labels[i].to(torch.float32), tuple(skipped)
        raise ImageLoadError(f"{self.name}: every one of its {n} images failed to load")

    def verify(self) -> list[str]:
        """Open every image once, drop the unreadable ones from this dataset, return their paths.

        With ``skip_bad_images=False`` the first bad image raises instead. After ``verify()``,
        ``len(self)`` and ``self.labels`` describe only the readable images and
        ``self.skipped_images`` holds the dropped paths, so label statistics (e.g. co-occurrence)
        match what training sees.
        """
        keep, bad = [], []
        for i, path in enumerate(self.paths):
            try:
                self.load(i)
                keep.append(i)
            except ImageLoadError:
                if not self.skip_bad_images:
                    raise
                bad.append(path)
        if not keep:
            raise ImageLoadError(f"{self.name}: none of its {len(self.paths)} images could be read")
        if bad:
            self._select(keep)
            self.skipped_images.update(bad)
        return bad

    def _select(self, keep: list[int]) -> None:
        self.paths = [self.paths[i] for i in keep]
        self.labels = self.labels[torch.as_tensor(keep, dtype=torch.long)]
