"""Pascal VOC (``ImageSets/Main/<split>.txt`` + ``Annotations/<id>.xml``) -> multi-label dataset.

Label of class c for an image: 1 if it has a non-difficult object of c, -1 if c appears only through
``<difficult>1</difficult>`` objects (the standard VOC evaluation ignores those), else 0.

Classes: the standard 20 VOC classes in the standard order, unless ``classes`` is given or the VOC
    directory holds a ``classes.txt`` (one name per line; written by ``python -m
    lcnet_fast.data.synthetic --format voc`` so non-VOC names round-trip). An object whose name is
    not a class is an error naming it and the XML file, so a misspelt or foreign annotation never
    silently becomes a negative.

Image file: ``JPEGImages/<filename from the XML>`` when the XML has ``<filename>``, else
``JPEGImages/<id>.jpg``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import torch

from .base import DatasetError, MultiLabelDataset

__all__ = ["VOCDataset", "VOC_CLASSES"]

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def _resolve_root(root: str, year: str) -> str:
    """Accept the ``VOC<year>`` directory itself or its parent (e.g. ``VOCdevkit``)."""
    for cand in (root, os.path.join(root, f"VOC{year}")):
        if os.path.isdir(os.path.join(cand, "ImageSets", "Main")) and os.path.isdir(
            os.path.join(cand, "Annotations")
        ):
            return cand
    raise FileNotFoundError(
        f"{root} is neither a VOC{year} directory (with ImageSets/Main and Annotations) "
        f"nor its parent"
    )


def _read_classes_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


class VOCDataset(MultiLabelDataset):
    """Multi-label view of one VOC split.

    Args:
        root: the ``VOC<year>`` directory or its parent ``VOCdevkit``.
        split: a file name stem in ``ImageSets/Main`` (``train``, ``val``, ``trainval``, ``test``),
            or a ``.txt`` file of image ids (a path, or a name in ``ImageSets/Main``).
        year: used to find ``VOC<year>`` under a parent directory.
        transform: applied to the uint8 ``(3, H, W)`` image.
        classes: column names; default ``<root>/classes.txt`` if present, else :data:`VOC_CLASSES`.
        skip_bad_images: see :class:`~lcnet_fast.data.base.MultiLabelDataset`.
        label_errors: when a list, an unknown class name, or an annotation file that is missing
            or unparsable, is not an error: a message naming the XML file is appended, the name is
            ignored and an image without a usable annotation is left out.
    """

    def __init__(
        self,
        root: str,
        split: str,
        year: str = "2007",
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
        skip_bad_images: bool = False,
        label_errors: list[str] | None = None,
    ) -> None:
        self.root = _resolve_root(root, year)
        if classes is None:
            cfile = os.path.join(self.root, "classes.txt")
            classes = _read_classes_file(cfile) if os.path.isfile(cfile) else list(VOC_CLASSES)
        classes = list(classes)
        if split.endswith(".txt") and os.path.isfile(split):  # an explicit list file
            split_file = split
        else:
            split_file = os.path.join(self.root, "ImageSets", "Main", os.path.basename(split))
            split_file += "" if split.endswith(".txt") else ".txt"
        if not os.path.isfile(split_file):
            raise FileNotFoundError(f"VOC split file not found: {split_file}")
        with open(split_file, encoding="utf-8") as f:
            ids = [line.split()[0] for line in f if line.strip()]
        if not ids:
            raise DatasetError(f"VOC split {split!r} is empty: {split_file}")
        column = {c: j for j, c in enumerate(classes)}
        labels = torch.zeros(len(ids), len(classes), dtype=torch.int8)
        paths, kept = [], []

        def problem(error: Exception) -> None:
            if label_errors is None:
                raise error
            label_errors.append(str(error))

        for image_id in ids:
            r = len(paths)
            xml_path = os.path.join(self.root, "Annotations", f"{image_id}.xml")
            if not os.path.isfile(xml_path):
                problem(
                    FileNotFoundError(
                        f"VOC annotation not found for image {image_id!r}: {xml_path}"
                    )
                )
                continue
            try:
                tree = ET.parse(xml_path).getroot()
            except ET.ParseError as exc:
                problem(DatasetError(f"cannot parse VOC annotation {xml_path}: {exc}"))
                continue
            kept.append(image_id)
            file_name = (tree.findtext("filename") or "").strip() or f"{image_id}.jpg"
            paths.append(os.path.join(self.root, "JPEGImages", file_name))
            for obj in tree.iter("object"):
                name = (obj.findtext("name") or "").strip()
                if name not in column:
                    problem(
                        DatasetError(
                            f"{xml_path}: unknown class name {name!r} (classes: {classes})"
                        )
                    )
                    continue
                difficult = (obj.findtext("difficult") or "0").strip() == "1"
                j = column[name]
                if not difficult:
                    labels[r, j] = 1
                elif labels[r, j] == 0:
                    labels[r, j] = -1
        if not paths:
            raise DatasetError(f"VOC split {split!r}: no image has a usable annotation")
        labels = labels[: len(paths)]
        self.image_ids = kept
        super().__init__(
            paths, labels, classes, transform, skip_bad_images, name=f"VOC {split_file}"
        )

    def _select(self, keep: list[int]) -> None:
        super()._select(keep)
        self.image_ids = [self.image_ids[i] for i in keep]
