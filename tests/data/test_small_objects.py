"""The small_objects scenes: one scene at every resolution, small objects that need the pixels,
labels independent of the background, partner co-occurrence a label graph can use."""

import numpy as np
import pytest
import torch

from lcnet_fast.data import SyntheticScenes
from lcnet_fast.data import small_objects as so


def scenes(n, size, **kwargs):
    return SyntheticScenes(n, size, 10, seed=0, kind="small_objects", **kwargs)


def test_same_scene_at_every_size():
    """Labels and geometry do not depend on the output size, and the 64-px image is the 128-px
    image area-averaged (both come from the same canvas): crop levels compare scene by scene."""
    small, large = scenes(8, 64), scenes(8, 128)
    assert torch.equal(small.labels, large.labels)
    for i in range(8):
        assert small.objects(i) == large.objects(i)
        coarse = small.load(i).double()
        fine = torch.nn.functional.avg_pool2d(large.load(i).double()[None], 2)[0]
        # uint8 rounding of each resize (and PIL's fixed-point box filter): at most 1.25 levels
        assert (coarse - fine).abs().max() <= 1.25


def test_deterministic_and_split_dependent():
    a, b = scenes(6, 64), scenes(6, 64)
    assert torch.equal(a.load(5), b.load(5)) and torch.equal(a.labels, b.labels)
    other = SyntheticScenes(6, 64, 10, seed=0, split="test", kind="small_objects")
    assert not torch.equal(a.load(0), other.load(0))


def test_classes_and_tiny_objects_are_small():
    ds = scenes(60, 128)
    assert ds.classes[:4] == ["red_circle", "green_square", "blue_triangle", "yellow_star"]
    assert ds.tiny_classes == list(range(4, 10))
    assert all(ds.classes[i].startswith("tiny_") for i in ds.tiny_classes)
    tiny_sides, large_sides = [], []
    for i in range(60):
        for obj in ds.objects(i):
            side = (obj.box[2] - obj.box[0]) * 128 / so.CANVAS  # in pixels of the 128-px image
            if obj.kind == "object":
                (tiny_sides if obj.class_index >= 4 else large_sides).append(side)
    assert len(tiny_sides) > 20 and max(tiny_sides) <= 0.05 * 128 and min(tiny_sides) >= 4.0
    assert min(large_sides) >= 0.17 * 128


def test_objects_match_labels_and_decoys_carry_no_label():
    ds = scenes(40, 64)
    decoys = 0
    for i in range(40):
        drawn = {o.class_index for o in ds.objects(i) if o.kind == "object"}
        assert drawn == set(np.flatnonzero(ds.labels[i].numpy()).tolist())
        decoys += sum(o.kind == "decoy" for o in ds.objects(i))
    assert decoys > 10


def test_background_tint_is_independent_of_the_labels():
    ds = scenes(1500, 32)
    tint = np.array(
        [ds.load(i).double().reshape(3, -1).median(dim=1).values.numpy() for i in range(len(ds))]
    )
    labels = ds.labels.numpy().astype(float)
    for c in range(10):
        for channel in range(3):
            r = np.corrcoef(labels[:, c], tint[:, channel])[0, 1]
            assert abs(r) < 0.1, (ds.classes[c], channel, r)


def test_tiny_classes_follow_their_partner():
    ds = SyntheticScenes(6000, 32, 10, seed=0, kind="small_objects")
    y = ds.labels.numpy().astype(bool)
    for c in ds.tiny_classes:
        mate = so.partner(c)
        assert mate in range(4)
        with_mate, without = y[y[:, mate], c].mean(), y[~y[:, mate], c].mean()
        assert with_mate == pytest.approx(so.P_WITH, abs=0.04)
        assert without == pytest.approx(so.P_WITHOUT, abs=0.03)
    # the two shapes of one colour have different partners: context tells them apart
    for first in range(4, 10, 2):
        assert so.partner(first) != so.partner(first + 1)
    # context classes are independent of each other
    assert abs(np.corrcoef(y[:, 0], y[:, 1])[0, 1]) < 0.05


def test_num_classes_prefix_and_bad_kind():
    assert scenes(3, 64).num_classes == 10
    four = SyntheticScenes(30, 64, 4, seed=0, kind="small_objects")
    assert four.classes == scenes(30, 64).classes[:4]
    assert torch.equal(four.labels, scenes(30, 64).labels[:, :4])
    with pytest.raises(ValueError, match="num_classes must be in 1..10"):
        SyntheticScenes(3, 64, 11, kind="small_objects")
    with pytest.raises(ValueError, match="kind must be one of"):
        SyntheticScenes(3, 64, 10, kind="small")
