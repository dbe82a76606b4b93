"""The plain baseline: backbone -> global average pooling -> linear, fed like LCNet."""

import pytest
import torch

import lcnet_fast
from lcnet_fast.config import ModelConfig
from lcnet_fast.engine.model import build_model, model_config_from


def test_forward_takes_images_and_single_views():
    torch.manual_seed(0)
    model = lcnet_fast.PooledClassifier(3, "test_resnet", input_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 3)
    torch.testing.assert_close(model(x[:, None]), logits, rtol=0, atol=0)
    assert (model.crop_level, model.image_size) == (1, 64)
    # exactly a linear layer on the spatial mean of the backbone's last feature map
    features = model.body(x)[-1].mean(dim=(2, 3))
    torch.testing.assert_close(logits, model.fc(features))


def test_gradients_reach_backbone_and_head():
    model = lcnet_fast.PooledClassifier(1, "test_resnet", input_size=32)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.body.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.zeros(2, 32, 32), ValueError, r"\(B, 3, S, S\)"),
        (torch.zeros(2, 5, 3, 32, 32), ValueError, r"\(B, 1, 3, S, S\)"),
    ],
)
def test_bad_input(bad, error, match):
    model = lcnet_fast.PooledClassifier(2, "test_resnet", input_size=32)
    with pytest.raises(error, match=match):
        model(bad)


def test_built_from_the_run_config_sees_the_whole_input():
    cfg = ModelConfig(arch="pooled", crop_level=2, image_size=16)
    assert cfg.view_geometry() == (1, 32)
    model = build_model(model_config_from(cfg, 4, 4))
    assert isinstance(model, lcnet_fast.PooledClassifier) and model.image_size == 32
    assert ModelConfig(crop_level=2, image_size=16).view_geometry() == (2, 16)
