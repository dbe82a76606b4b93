"""Crop-Forwarding views: exact tiles, an area-averaged global view, clear errors."""

import pytest
import torch
from lcnet_reference import crop_views as reference_crop_views

from lcnet_fast.models import num_views, split_views


@pytest.mark.parametrize("level,size", [(1, 5), (2, 3), (3, 7), (4, 2)])
def test_views_are_exact_tiles_and_area_average(level, size):
    images = torch.randn(2, 3, level * size, level * size, dtype=torch.float64)
    views = split_views(images, level)
    assert views.shape == (2, num_views(level), 3, size, size)
    if level == 1:
        assert torch.equal(views[:, 0], images)
        return
    blocks = images.reshape(2, 3, size, level, size, level)  # pixel (i, j) -> block (i//k, j//k)
    torch.testing.assert_close(views[:, 0], blocks.mean(dim=(3, 5)), rtol=0, atol=1e-12)
    for row in range(level):
        for col in range(level):
            tile = images[:, :, row * size : (row + 1) * size, col * size : (col + 1) * size]
            assert torch.equal(views[:, 1 + row * level + col], tile)
    for index, view in enumerate(reference_crop_views(images, level)):
        assert torch.equal(views[:, index], view)


def test_num_views():
    assert [num_views(k) for k in (1, 2, 3, 4)] == [1, 5, 10, 17]
    with pytest.raises(ValueError, match="crop level"):
        num_views(0)


@pytest.mark.parametrize(
    "bad,message",
    [
        (torch.randn(3, 8, 8), "4-D"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "floating-point"),
        (torch.randn(1, 3, 8, 6), "square"),
        (torch.randn(1, 3, 9, 9), "divisible"),
    ],
)
@pytest.mark.parametrize("implementation", [split_views, reference_crop_views])
def test_bad_input_is_named(bad, message, implementation):
    with pytest.raises((ValueError, TypeError), match=message):
        implementation(bad, 2)


def test_model_names_the_bad_input():
    import lcnet_fast

    model = lcnet_fast.LCNet(
        3,
        backbone="test_resnet",
        crop_level=2,
        image_size=32,
        d_model=16,
        num_heads=2,
        num_layers=1,
        dim_feedforward=16,
    )
    with pytest.raises(ValueError, match="divisible by the crop level 2"):
        model(torch.randn(1, 3, 65, 65))
