"""COCO / VOC / CSV / folder readers on hand-written annotation files, and their error messages."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lcnet_fast.data import (
    VOC_CLASSES,
    CocoDataset,
    CSVDataset,
    FolderDataset,
    ImageLoadError,
    VOCDataset,
)


def _png(path, value=0, size=8):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


# ---------------------------------------------------------------- COCO


def _coco(tmp_path, annotations, categories=None):
    cats = categories or [
        {"id": 1, "name": "person"},
        {"id": 90, "name": "toothbrush"},
        {"id": 13, "name": "stop sign"},
    ]
    images = [
        {"id": 7, "file_name": "a.png"},
        {"id": 3, "file_name": "b.png"},
        {"id": 11, "file_name": "c.png"},
    ]
    for k, im in enumerate(images):
        _png(str(tmp_path / "img" / im["file_name"]), value=10 * k)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return str(tmp_path / "img"), str(path)


def test_coco_non_contiguous_ids_sorted_and_unannotated_images_kept(tmp_path):
    anns = [
        {"id": 1, "image_id": 7, "category_id": 90},
        {"id": 2, "image_id": 7, "category_id": 1},
        {"id": 3, "image_id": 11, "category_id": 13},
        {"id": 4, "image_id": 11, "category_id": 13},
    ]
    ds = CocoDataset(*_coco(tmp_path, anns))
    assert ds.classes == ["person", "stop sign", "toothbrush"]  # ids 1, 13, 90
    assert ds.image_ids == [3, 7, 11]
    assert ds.labels.tolist() == [[0, 0, 0], [1, 0, 1], [0, 1, 0]]  # image 3 has no annotation
    img, label = ds[1]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8)
    assert label.tolist() == [1.0, 0.0, 1.0]
    assert ds.image_path(1).endswith("a.png")


def test_coco_classes_subset_and_unknown_name(tmp_path):
    anns = [{"id": 1, "image_id": 7, "category_id": 90}]
    img_dir, ann = _coco(tmp_path, anns)
    ds = CocoDataset(img_dir, ann, classes=["toothbrush", "person"])
    assert ds.labels.tolist() == [[0, 0], [1, 0], [0, 0]]
    with pytest.raises(ValueError, match="unknown class name.*'giraffe'"):
        CocoDataset(img_dir, ann, classes=["person", "giraffe"])


def test_coco_bad_annotation_references(tmp_path):
    with pytest.raises(ValueError, match="category_id 5"):
        CocoDataset(*_coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 5}]))
    with pytest.raises(ValueError, match="image_id 99"):
        CocoDataset(*_coco(tmp_path, [{"id": 1, "image_id": 99, "category_id": 1}]))


def test_coco_empty_dataset(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(
        json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]})
    )
    with pytest.raises(ValueError, match="contains no images"):
        CocoDataset(str(tmp_path), str(path))


# ---------------------------------------------------------------- VOC


def _voc_xml(objects, filename=None):
    objs = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult></object>" for n, d in objects
    )
    fn = f"<filename>{filename}</filename>" if filename else ""
    return f"<annotation>{fn}{objs}</annotation>"


def _voc(tmp_path, items, split="trainval", classes_txt=None):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, objects in items.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml(objects))
        _png(str(root / "JPEGImages" / f"{image_id}.jpg"))
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in items))
    if classes_txt:
        (root / "classes.txt").write_text("\n".join(classes_txt))
    return tmp_path / "VOCdevkit", root


def test_voc_difficult_only_is_ignored_and_both_roots_accepted(tmp_path):
    parent, root = _voc(
        tmp_path,
        {
            "000001": [("dog", False), ("person", True)],
            "000002": [("person", True), ("person", False)],  # one non-difficult person -> 1
            "000003": [],
        },
    )
    for r in (parent, root):
        ds = VOCDataset(str(r), "trainval")
        assert ds.classes == list(VOC_CLASSES) and len(ds.classes) == 20
        dog, person = ds.classes.index("dog"), ds.classes.index("person")
        assert ds.labels[0, dog] == 1 and ds.labels[0, person] == -1
        assert ds.labels[1, person] == 1
        assert int(ds.labels[2].abs().sum()) == 0
        assert ds[0][1][person].item() == -1.0
        assert ds.image_path(0).endswith(os.path.join("JPEGImages", "000001.jpg"))


def test_voc_unknown_name_empty_and_missing_split(tmp_path):
    parent, root = _voc(tmp_path, {"000001": [("doggo", False)]})
    with pytest.raises(ValueError, match="'doggo'.*000001.xml|000001.xml.*'doggo'"):
        VOCDataset(str(parent), "trainval")
    (root / "ImageSets" / "Main" / "test.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        VOCDataset(str(parent), "test", classes=["doggo"])
    with pytest.raises(FileNotFoundError, match="val.txt"):
        VOCDataset(str(parent), "val")
    with pytest.raises(FileNotFoundError, match="VOC2007"):
        VOCDataset(str(tmp_path), "trainval")


def test_voc_classes_txt_overrides_standard_names(tmp_path):
    parent, _ = _voc(
        tmp_path, {"a": [("blob", False)], "b": [("spot", True)]}, classes_txt=["spot", "blob"]
    )
    ds = VOCDataset(str(parent), "trainval")
    assert ds.classes == ["spot", "blob"]
    assert ds.labels.tolist() == [[0, 1], [-1, 0]]


# ---------------------------------------------------------------- CSV


def _images(tmp_path, names):
    for k, n in enumerate(names):
        _png(str(tmp_path / "img" / n), value=k)
    return str(tmp_path / "img")


def test_csv_onehot_layout_with_reordering_and_minus_one(tmp_path):
    img = _images(tmp_path, ["x.png", "y.png"])
    (tmp_path / "a.csv").write_text("file,cat,dog,bird\nx.png,1,0,-1\ny.png,0,1,1\n")
    ds = CSVDataset(str(tmp_path / "a.csv"), img)
    assert ds.classes == ["cat", "dog", "bird"]
    assert ds.labels.tolist() == [[1, 0, -1], [0, 1, 1]]
    ds = CSVDataset(str(tmp_path / "a.csv"), img, classes=["bird", "cat", "dog"])
    assert ds.labels.tolist() == [[-1, 1, 0], [1, 0, 1]]
    assert ds[1][1].tolist() == [1.0, 0.0, 1.0]


def test_csv_columns_disagreeing_with_classes(tmp_path):
    img = _images(tmp_path, ["x.png"])
    (tmp_path / "a.csv").write_text("file,cat,dog\nx.png,1,0\n")
    with pytest.raises(
        ValueError, match=r"missing columns \['bird'\], unexpected columns \['dog'\]"
    ):
        CSVDataset(str(tmp_path / "a.csv"), img, classes=["cat", "bird"])
    (tmp_path / "b.csv").write_text("file,cat,dog\nx.png,1,2\n")
    with pytest.raises(ValueError, match="line 2, column 'dog'"):
        CSVDataset(str(tmp_path / "b.csv"), img)


def test_csv_list_layout(tmp_path):
    img = _images(tmp_path, ["x.png", "y.png", "z.png"])
    (tmp_path / "l.csv").write_text("image,labels\nx.png,dog;traffic light\ny.png,\nz.png,cat\n")
    ds = CSVDataset(str(tmp_path / "l.csv"), img)
    assert ds.classes == ["cat", "dog", "traffic light"]
    assert ds.labels.tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    (tmp_path / "s.csv").write_text("image,labels\nx.png,dog  cat\ny.png,cat\n")
    ds = CSVDataset(str(tmp_path / "s.csv"), img, classes=["dog", "cat", "cow"], delimiter=" ")
    assert ds.labels.tolist() == [[1, 1, 0], [0, 1, 0]]


def test_csv_unknown_class_name_names_it_and_the_row(tmp_path):
    img = _images(tmp_path, ["x.png", "y.png"])
    (tmp_path / "l.csv").write_text("image,labels\nx.png,dog\ny.png,dog;unicorn\n")
    with pytest.raises(ValueError, match=r"line 3 \(y.png\): unknown class name 'unicorn'"):
        CSVDataset(str(tmp_path / "l.csv"), img, classes=["dog", "cat"])


def test_csv_empty(tmp_path):
    (tmp_path / "e.csv").write_text("image,labels\n")
    with pytest.raises(ValueError, match="contains no images"):
        CSVDataset(str(tmp_path / "e.csv"), str(tmp_path))


# ---------------------------------------------------------------- folder


def test_folder_dataset(tmp_path):
    _png(str(tmp_path / "f" / "b" / "1.png"))
    _png(str(tmp_path / "f" / "a" / "2.png"))
    _png(str(tmp_path / "f" / "a" / "3.png"))
    (tmp_path / "f" / "a" / "notes.txt").write_text("not an image")
    ds = FolderDataset(str(tmp_path / "f"))
    assert ds.classes == ["a", "b"]
    assert ds.labels.tolist() == [[1, 0], [1, 0], [0, 1]]


# ---------------------------------------------------------------- bad images


def _bad_csv(tmp_path):
    img = _images(tmp_path, ["ok0.png", "ok3.png"])
    with open(os.path.join(img, "corrupt.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 definitely not a jpeg " * 8)
    (tmp_path / "b.csv").write_text("image,c\nok0.png,1\ncorrupt.jpg,0\nmissing.png,1\nok3.png,0\n")
    return str(tmp_path / "b.csv"), img


def test_corrupt_and_missing_images_raise_naming_the_file(tmp_path):
    csv_file, img = _bad_csv(tmp_path)
    ds = CSVDataset(csv_file, img)
    with pytest.raises(ImageLoadError, match="corrupt.jpg"):
        ds[1]
    with pytest.raises(ImageLoadError, match="missing.png"):
        ds[2]
    with pytest.raises(ImageLoadError, match="corrupt.jpg"):
        ds.verify()


def test_skip_bad_images_at_load_time_and_by_verify(tmp_path):
    csv_file, img = _bad_csv(tmp_path)
    ds = CSVDataset(csv_file, img, skip_bad_images=True)
    image, label = ds[1]  # corrupt -> missing -> ok3
    assert image[0, 0, 0].item() == 1 and label.tolist() == [0.0]
    assert {os.path.basename(p) for p in ds.skipped_images} == {"corrupt.jpg", "missing.png"}

    ds = CSVDataset(csv_file, img, skip_bad_images=True)
    bad = ds.verify()
    assert sorted(os.path.basename(p) for p in bad) == ["corrupt.jpg", "missing.png"]
    assert len(ds) == 2 and ds.labels.tolist() == [[1], [0]]
    assert len(ds.skipped_images) == 2
    assert [os.path.basename(ds.image_path(i)) for i in range(2)] == ["ok0.png", "ok3.png"]
