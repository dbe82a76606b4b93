"""Synthetic -> files (COCO / VOC / CSV) -> readers: the same classes, labels and (PNG) pixels."""

import os

import pytest
import torch

from lcnet_fast.data import CocoDataset, CSVDataset, SyntheticScenes, VOCDataset
from lcnet_fast.data.synthetic import main

ARGS = dict(num_images=6, image_size=48, num_classes=10, seed=5)


def _write(tmp_path, fmt, ext="png", split="train"):
    out = str(tmp_path / fmt)
    rc = main(
        [
            "--out",
            out,
            "--format",
            fmt,
            "--num-images",
            str(ARGS["num_images"]),
            "--image-size",
            str(ARGS["image_size"]),
            "--num-classes",
            str(ARGS["num_classes"]),
            "--seed",
            str(ARGS["seed"]),
            "--split",
            split,
            "--ext",
            ext,
        ]
    )
    assert rc == 0
    return out


def _read(fmt, out, split="train"):
    if fmt == "coco":
        return CocoDataset(
            os.path.join(out, "images"), os.path.join(out, "annotations", f"instances_{split}.json")
        )
    if fmt == "voc":
        return VOCDataset(out, split)
    return CSVDataset(os.path.join(out, f"{split}.csv"), os.path.join(out, "images"))


@pytest.mark.parametrize("fmt", ["coco", "voc", "csv"])
def test_png_round_trip_is_exact(tmp_path, fmt):
    out = _write(tmp_path, fmt, split="train,test")
    for split in ("train", "test"):
        ref = SyntheticScenes(split=split, **ARGS)
        ds = _read(fmt, out, split)
        assert ds.classes == ref.classes
        assert torch.equal(ds.labels, ref.labels)
        assert len(ds) == len(ref)
        for i in range(len(ds)):
            img, label = ds[i]
            ref_img, ref_label = ref[i]
            assert torch.equal(img, ref_img), ds.image_path(i)
            assert torch.equal(label, ref_label)


def test_jpeg_round_trip_labels_exact_pixels_close(tmp_path):
    out = _write(tmp_path, "csv", ext="jpg")
    ref = SyntheticScenes(split="train", **ARGS)
    ds = _read("csv", out)
    assert torch.equal(ds.labels, ref.labels)
    assert ds.image_path(0).endswith(".jpg")
    diff = (ds[0][0].float() - ref[0][0].float()).abs().mean()
    assert diff < 4.0
