"""The drivers' input path: uint8 loader batches, normalised and cut into views on the device by
engine.data.DeviceViews (lcnet_fast.ops.crop_views)."""

import pytest
import torch

from lcnet_fast.config import DataConfig, ModelConfig
from lcnet_fast.data.transforms import build_transforms
from lcnet_fast.engine.data import DeviceViews, transforms_for
from lcnet_fast.models.crop_forwarding import split_views


def test_device_views_equal_the_float_pipeline_then_the_models_split():
    data, model = DataConfig(), ModelConfig(crop_level=3, image_size=20)
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 70, 50), dtype=torch.uint8, generator=g) for _ in range(2)]
    batch = torch.stack([transforms_for(False, data, model)(x) for x in images])
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 60, 60)
    views = DeviceViews.from_config(data, model)(batch)
    float_pipeline = build_transforms(False, 3, 20, mean=data.mean, std=data.std)
    expected = split_views(torch.stack([float_pipeline(x) for x in images]), 3)
    assert views.shape == expected.shape == (2, 10, 3, 20, 20)
    torch.testing.assert_close(views, expected, rtol=0, atol=1e-5)


def test_device_views_names_a_wrong_batch():
    to_views = DeviceViews.from_config(DataConfig(), ModelConfig())
    with pytest.raises(TypeError, match="uint8 \\(B, 3, S, S\\) image batches .* got dtype "
                                        "torch.float32 shape \\(2, 3, 128, 128\\)"):
        to_views(torch.zeros(2, 3, 128, 128))
    with pytest.raises(ValueError, match="crop_views"):  # side is not crop_level * image_size
        to_views(torch.zeros(2, 3, 100, 100, dtype=torch.uint8))
