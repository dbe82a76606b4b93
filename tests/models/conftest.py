"""Small model configurations shared by the model tests (tiny timm backbones, no network)."""

import lcnet_reference
import pytest
import torch

import lcnet_fast


def tiny_config(**overrides) -> dict:
    config = dict(
        backbone="test_resnet",
        crop_level=2,
        image_size=64,
        d_model=32,
        num_heads=4,
        num_layers=2,
        dim_feedforward=48,
        dropout=0.1,
    )
    config.update(overrides)
    return config


def model_pair(num_classes: int, seed: int = 0, **overrides):
    """A reference model and a fast model holding the same weights (loaded with strict=True)."""
    torch.manual_seed(seed)
    reference = lcnet_reference.LCNet(num_classes, **tiny_config(**overrides))
    fast = lcnet_fast.LCNet(num_classes, **tiny_config(**overrides))
    fast.load_state_dict(reference.state_dict(), strict=True)
    return reference, fast


@pytest.fixture
def pair_factory():
    return model_pair


ATTENTION_FORMS = ("projected", "absorbed")


@pytest.fixture(params=ATTENTION_FORMS)
def attention_form(request, monkeypatch):
    """Run the test with the fast LLCD layer's attentions forced into one form (the shape rule
    `absorbs` would otherwise pick by size): "projected" (cross_attention on projected heads) or
    "absorbed" (lcnet_fast/models/absorbed_attention.py)."""
    monkeypatch.setattr(
        "lcnet_fast.models.llcd.absorbs", lambda *args: request.param == "absorbed"
    )
    return request.param
