"""COCO-style instances JSON -> multi-label dataset.

Classes come from the file's ``categories`` sorted by id (COCO's 80 classes use the non-contiguous
ids 1..90, so column j is the j-th smallest id, never ``id - 1``). Nothing assumes 80 classes. An
image with no annotation is kept, all-negative (it is a real negative example). Crowd annotations
count as presence, as in the ML-GCN/Q2L loaders.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import torch

from .base import DatasetError, MultiLabelDataset

__all__ = ["CocoDataset"]


def _load_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    for key in ("images", "categories"):
        if key not in data:
            raise DatasetError(f"{path}: missing the '{key}' list of a COCO instances file")
    return data


class CocoDataset(MultiLabelDataset):
    """Multi-label view of a COCO instances file.

    Args:
        image_dir: directory holding the ``file_name`` of every image entry.
        annotation_file: the instances JSON (``images``, ``annotations``, ``categories``).
        transform: applied to the uint8 ``(3, H, W)`` image.
        classes: optional list of category NAMES giving the columns (subset and order); every name
            must exist in ``categories`` (else an error naming the unknown ones); annotations of
            other categories are ignored. Default: all categories, sorted by id.
        skip_bad_images: see :class:`~lcnet_fast.data.base.MultiLabelDataset`.
        label_errors: when a list, an annotation with an unknown image_id or category_id is not an
            error: a message naming the file and the annotation is appended and it is ignored.
    """

    def __init__(
        self,
        image_dir: str,
        annotation_file: str,
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
        skip_bad_images: bool = False,
        label_errors: list[str] | None = None,
    ) -> None:
        data = _load_json(annotation_file)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        names = [c["name"] for c in cats]
        if classes is None:
            classes = names
        else:
            unknown = [c for c in classes if c not in names]
            if unknown:
                raise DatasetError(
                    f"{annotation_file}: unknown class name(s) {unknown}; categories are {names}"
                )
        column = {c["id"]: classes.index(c["name"]) for c in cats if c["name"] in classes}
        known_ids = {c["id"] for c in cats}
        images = sorted(data["images"], key=lambda im: im["id"])
        row = {im["id"]: r for r, im in enumerate(images)}
        labels = torch.zeros(len(images), len(classes), dtype=torch.int8)
        for ann in data.get("annotations", []):
            message = None
            if ann["image_id"] not in row:
                message = (
                    f"{annotation_file}: annotation {ann.get('id')} refers to unknown image_id "
                    f"{ann['image_id']}"
                )
            elif ann["category_id"] not in known_ids:
                message = (
                    f"{annotation_file}: annotation {ann.get('id')} (image "
                    f"{images[row[ann['image_id']]].get('file_name')}) has category_id "
                    f"{ann['category_id']} not listed in categories"
                )
            if message is not None:
                if label_errors is None:
                    raise DatasetError(message)
                label_errors.append(message)
                continue
            if ann["category_id"] in column:
                labels[row[ann["image_id"]], column[ann["category_id"]]] = 1
        self.image_ids = [im["id"] for im in images]
        paths = [os.path.join(image_dir, im["file_name"]) for im in images]
        super().__init__(
            paths, labels, classes, transform, skip_bad_images, name=f"COCO {annotation_file}"
        )

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self.image_ids = [self.image_ids[i] for i in keep]
