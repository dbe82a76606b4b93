"""Write a :class:`~lcnet_fast.data.synthetic.SyntheticScenes` split as files in COCO, VOC or CSV
form.

The point is realism: the same training code path (file reader, image decoding) can be exercised on
the synthetic data, and each reader is tested by a round trip. Layouts under ``out``:

* coco: ``images/<split>_<i>.<ext>``, ``annotations/instances_<split>.json`` (category ids 1..C in
  class order, one annotation with a pixel ``bbox`` per drawn instance, ``iscrowd`` 0). Read with
  ``CocoDataset(out/images, out/annotations/instances_<split>.json)``.
* voc: ``VOC2007/JPEGImages/<split>_<i>.<ext>``, ``VOC2007/Annotations/<split>_<i>.xml`` (the real
  file name in ``<filename>``), ``VOC2007/ImageSets/Main/<split>.txt`` and ``VOC2007/classes.txt``
  (the synthetic class names, which VOCDataset reads instead of the 20 VOC names). Read with
  ``VOCDataset(out, split)``.
* csv: ``images/<split>_<i>.<ext>`` and ``<split>.csv`` in the one-hot layout (``image,<classes>``).
  Read with ``CSVDataset(out/<split>.csv, out/images)``.

PNG is lossless (the reader returns the very same pixels); JPEG is written at quality 95 without
chroma subsampling (4:4:4), so the tiny coloured objects keep their colour.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

__all__ = ["write_dataset", "save_image"]


def save_image(image, path: str) -> None:
    """Save a uint8 ``(3, H, W)`` tensor; PNG lossless, JPEG quality 95 with 4:4:4 chroma."""
    arr = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    if path.lower().endswith((".jpg", ".jpeg")):
        Image.fromarray(arr).save(path, quality=95, subsampling=0)  # 4:4:4 keeps tiny colours
    else:
        Image.fromarray(arr).save(path)


def _write_images(ds, image_dir: str, ext: str) -> list[str]:
    os.makedirs(image_dir, exist_ok=True)
    names = []
    for i in range(len(ds)):
        name = f"{ds.file_stem(i)}.{ext}"
        save_image(ds.load(i), os.path.join(image_dir, name))
        names.append(name)
    return names


def _write_coco(ds, out: str, ext: str) -> str:
    names = _write_images(ds, os.path.join(out, "images"), ext)
    s = ds.image_size
    images, annotations = [], []
    for i, name in enumerate(names):
        images.append({"id": i + 1, "file_name": name, "width": s, "height": s})
        for obj in ds.objects(i):
            if obj.kind != "object":
                continue
            x0, y0, x1, y1 = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": obj.class_index + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": j + 1, "name": c, "supercategory": "synthetic"} for j, c in enumerate(ds.classes)
    ]
    path = os.path.join(out, "annotations", f"instances_{ds.split}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def _write_voc(ds, out: str, ext: str) -> str:
    root = os.path.join(out, "VOC2007")
    names = _write_images(ds, os.path.join(root, "JPEGImages"), ext)
    os.makedirs(os.path.join(root, "Annotations"), exist_ok=True)
    os.makedirs(os.path.join(root, "ImageSets", "Main"), exist_ok=True)
    for i, name in enumerate(names):
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = name
        size = ET.SubElement(ann, "size")
        for tag, v in (("width", ds.image_size), ("height", ds.image_size), ("depth", 3)):
            ET.SubElement(size, tag).text = str(v)
        for obj in ds.objects(i):
            if obj.kind != "object":
                continue
            o = ET.SubElement(ann, "object")
            ET.SubElement(o, "name").text = ds.classes[obj.class_index]
            ET.SubElement(o, "difficult").text = "0"
            box = ET.SubElement(o, "bndbox")
            x0, y0, x1, y1 = obj.box
            for tag, v in (
                ("xmin", x0 + 1),
                ("ymin", y0 + 1),
                ("xmax", x1),
                ("ymax", y1),
            ):  # VOC is 1-based
                ET.SubElement(box, tag).text = str(v)
        ET.ElementTree(ann).write(os.path.join(root, "Annotations", f"{ds.file_stem(i)}.xml"))
    with open(
        os.path.join(root, "ImageSets", "Main", f"{ds.split}.txt"), "w", encoding="utf-8"
    ) as f:
        f.writelines(f"{ds.file_stem(i)}\n" for i in range(len(ds)))
    with open(os.path.join(root, "classes.txt"), "w", encoding="utf-8") as f:
        f.writelines(f"{c}\n" for c in ds.classes)
    return root


def _write_csv(ds, out: str, ext: str) -> str:
    names = _write_images(ds, os.path.join(out, "images"), ext)
    path = os.path.join(out, f"{ds.split}.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(["image", *ds.classes]) + "\n")
        for name, row in zip(names, ds.labels.tolist(), strict=True):
            f.write(",".join([name, *map(str, row)]) + "\n")
    return path


_WRITERS = {"coco": _write_coco, "voc": _write_voc, "csv": _write_csv}


def write_dataset(ds, out: str, fmt: str, ext: str = "png") -> str:
    """Write ``ds`` under ``out`` in format ``fmt`` ("coco", "voc", "csv"); return the annotation
    path."""
    if fmt not in _WRITERS:
        raise ValueError(f"format must be one of {sorted(_WRITERS)}, got {fmt!r}")
    if ext not in ("png", "jpg"):
        raise ValueError(f"ext must be 'png' or 'jpg', got {ext!r}")
    return _WRITERS[fmt](ds, out, ext)
