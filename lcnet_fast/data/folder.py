"""One sub-folder per class (``root/<class>/<image>``) -> single-label images as a multi-label
dataset.

Useful to try the package on an ImageFolder-style collection; each label row has exactly one 1.
Classes are the sub-folder names, sorted. Files are taken when their extension is in ``extensions``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from .base import DatasetError, MultiLabelDataset

__all__ = ["FolderDataset", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class FolderDataset(MultiLabelDataset):
    """Args: root (one sub-folder per class), transform, extensions (lower-case, with dot),
    skip_bad_images (see :class:`~lcnet_fast.data.base.MultiLabelDataset`)."""

    def __init__(
        self,
        root: str,
        transform: Callable | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        skip_bad_images: bool = False,
    ) -> None:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder not found: {root}")
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not classes:
            raise DatasetError(f"{root} has no class sub-folders")
        paths, rows = [], []
        for j, c in enumerate(classes):
            for name in sorted(os.listdir(os.path.join(root, c))):
                if os.path.splitext(name)[1].lower() in extensions:
                    paths.append(os.path.join(root, c, name))
                    rows.append(j)
        if not paths:
            raise DatasetError(f"{root} contains no images with extensions {list(extensions)}")
        labels = torch.zeros(len(paths), len(classes), dtype=torch.int8)
        labels[torch.arange(len(paths)), torch.tensor(rows)] = 1
        super().__init__(paths, labels, classes, transform, skip_bad_images, name=f"folder {root}")
