"""SyntheticScenes: determinism, cheap labels, small objects really small, themes induce
co-occurrence."""

import numpy as np
import pytest
import torch

from lcnet_fast.data import SyntheticScenes
from lcnet_fast.data.scene import CATALOGUE, COLOURS


def test_same_seed_same_images_and_labels_independent_of_dataset_size():
    a = SyntheticScenes(num_images=6, image_size=48, num_classes=10, seed=3)
    b = SyntheticScenes(num_images=12, image_size=48, num_classes=10, seed=3)
    assert torch.equal(a.labels, b.labels[:6])
    for i in (0, 5):
        assert torch.equal(a[i][0], b[i][0])
        assert torch.equal(a[i][1], b.labels[i].float())
    # reading in another order (as a worker would) gives the same image
    assert torch.equal(b[5][0], SyntheticScenes(12, 48, 10, seed=3)[5][0])


def test_seed_and_split_change_the_data():
    base = SyntheticScenes(20, 48, 10, seed=0)
    other_seed = SyntheticScenes(20, 48, 10, seed=1)
    test_split = SyntheticScenes(20, 48, 10, seed=0, split="test")
    assert not torch.equal(base.labels, other_seed.labels)
    assert not torch.equal(base.labels, test_split.labels)
    assert not torch.equal(base[0][0], test_split[0][0])


def test_item_contract_and_names():
    ds = SyntheticScenes(4, 64, 10, seed=0, transform=lambda x: x.float() / 255)
    image, label = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert label.shape == (10,) and label.dtype == torch.float32
    assert ds.labels.dtype == torch.int8 and ds.labels.shape == (4, 10)
    assert ds.classes[:3] == ["red_circle", "green_square", "blue_triangle"]
    assert len(set(ds.classes)) == 10 and any(c.startswith("tiny_") for c in ds.classes)
    assert ds.image_path(3) == "synthetic:train/train_000003"
    assert bool((ds.labels.sum(1) >= 1).all()), "every image has at least one label"
    with pytest.raises(IndexError):
        ds[4]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_images=0), "empty split"),
        (dict(num_classes=0), "num_classes"),
        (dict(num_classes=len(CATALOGUE) + 1), "num_classes"),
        (dict(split="training"), "split"),
        (dict(image_size=16), "image_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(num_images=4, image_size=64, num_classes=10, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        SyntheticScenes(**args)


def test_objects_match_labels():
    ds = SyntheticScenes(30, 64, 10, seed=2)
    for i in range(30):
        drawn = {o.class_index for o in ds.objects(i) if o.kind == "object"}
        assert drawn == set(np.flatnonzero(ds.labels[i].numpy()).tolist())


def test_tiny_classes_are_small_in_pixels():
    size = 128
    ds = SyntheticScenes(40, size, 10, seed=0)
    tiny = ds.tiny_classes
    assert len(tiny) >= 2
    measured = 0
    for i in range(40):
        img = ds.load(i).permute(1, 2, 0).numpy().astype(int)
        for obj in ds.objects(i):
            if obj.kind != "object" or obj.class_index not in tiny:
                continue
            x0, y0, x1, y1 = obj.box
            assert (x1 - x0) <= 0.05 * size + 1
            # measured area: pixels of the class colour inside its box
            colour = np.array(COLOURS[CATALOGUE[obj.class_index].colour])
            area = int((np.abs(img[y0:y1, x0:x1] - colour).sum(-1) == 0).sum())
            assert 0 < area <= 0.0025 * size * size, (
                area
            )  # at most 0.25 % of the image (41 px of 16384)
            measured += 1
    assert measured >= 5
    large = [
        o
        for i in range(10)
        for o in ds.objects(i)
        if o.kind == "object" and o.class_index not in tiny
    ]
    assert min(o.box[2] - o.box[0] for o in large) >= 0.15 * size


def test_themes_induce_cooccurrence_above_independence():
    y = SyntheticScenes(3000, 64, 8, seed=0).labels.double()
    p = y.mean(0)
    joint = (y.T @ y) / len(y)
    lift = joint / torch.outer(p, p)
    # classes 0 and 4 share home theme 0 (class % 4): strongly positively correlated
    assert lift[0, 4] > 1.8
    # classes 0 and 1 have different home themes: no more often together than independence
    assert lift[0, 1] < 1.0


def test_writer_writes_a_validation_split_by_default(tmp_path):
    from lcnet_fast.data.synthetic import main

    assert main(["--out", str(tmp_path), "--format", "csv", "--num-images", "3"]) == 0
    for split in ("train", "val", "test"):
        lines = (tmp_path / f"{split}.csv").read_text().splitlines()
        assert len(lines) == 1 + 3, split
    # the validation images differ from the training images (independent streams)
    assert (tmp_path / "images" / "val_000000.png").read_bytes() != (
        tmp_path / "images" / "train_000000.png"
    ).read_bytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num-images", "0"], "--num-images must be >= 1, got 0"),
        (["--image-size", "-4"], "--image-size must be >= 8, got -4"),
        (["--split", "train,foo"], "--split takes train, val and/or test"),
        (["--kind", "small_objects", "--num-classes", "99"], "num_classes must be in 1..10"),
    ],
)
def test_writer_arguments_are_one_error(argv, message, tmp_path, capsys):
    from lcnet_fast.data.synthetic import main

    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "out"), "--format", "csv", *argv])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
