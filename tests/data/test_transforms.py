"""build_transforms, Cutout and collate_multilabel."""

import numpy as np
import pytest
import torch
from PIL import Image

from lcnet_fast.data import AugmentConfig, Cutout, build_transforms, collate_multilabel


def _image(h=40, w=30):
    return torch.randint(
        0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_eval_pipeline_resizes_to_square_and_normalises():
    t = build_transforms(train=False, crop_level=2, image_size=24)
    img = _image()
    out = t(img)
    assert out.shape == (3, 48, 48) and out.dtype == torch.float32
    assert torch.equal(out, t(img))  # deterministic
    # a constant image maps to (value - mean) / std
    const = torch.full((3, 10, 10), 255, dtype=torch.uint8)
    got = build_transforms(False, 1, 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(const)
    assert torch.allclose(got, torch.full_like(got, 2.0))


def test_pil_input_is_accepted():
    pil = Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8))
    assert build_transforms(True, 1, 16)(pil).shape == (3, 16, 16)


def test_augmentation_switches():
    img = _image()
    off = build_transforms(True, 1, 32, augment=False)
    assert torch.equal(off(img), build_transforms(False, 1, 32)(img))
    flip_only = build_transforms(
        True, 1, 32, augment={"hflip": 1.0, "randaugment": False, "cutout": False}
    )
    assert torch.allclose(flip_only(img), off(img).flip(-1))
    steps = build_transforms(True, 1, 32).transforms
    names = [type(m).__name__ for s in steps for m in ([s] + list(s.children()))]
    assert "RandAugment" in names and "Cutout" in names and "RandomHorizontalFlip" in names
    names = [type(s).__name__ for s in build_transforms(False, 1, 32, augment=True).transforms]
    assert "RandAugment" not in names and "Cutout" not in names
    with pytest.raises(ValueError, match="unknown option.*'rand_augment'"):
        build_transforms(True, 1, 32, augment={"rand_augment": True})
    with pytest.raises(ValueError, match="crop_level"):
        build_transforms(True, 0, 32)
    assert AugmentConfig.resolve(None) == AugmentConfig()


def test_uint8_output_stops_before_the_float_steps():
    img = _image()
    u8 = build_transforms(False, 2, 24, output="uint8")(img)
    assert u8.shape == (3, 48, 48) and u8.dtype == torch.uint8
    floats = build_transforms(False, 2, 24)(img)  # ImageNet mean/std by default
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close((u8 / 255 - mean) / std, floats, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match='output must be "float" or "uint8"'):
        build_transforms(False, 1, 8, output="half")


def test_uint8_cutout_fills_the_rounded_grey():
    """Same hole as the float pipeline (same draws), filled with round(0.5 * 255) = 128."""
    cfg = {"hflip": 0.0, "randaugment": False, "cutout_p": 1.0}
    img = _image(32, 32)
    torch.manual_seed(5)
    u8 = build_transforms(True, 1, 32, augment=cfg, output="uint8")(img)
    torch.manual_seed(5)
    floats = build_transforms(True, 1, 32, augment=cfg, mean=(0, 0, 0), std=(1, 1, 1))(img)
    hole = floats == 0.5
    assert hole.any() and (u8[hole] == 128).all()
    torch.testing.assert_close(u8[~hole] / 255, floats[~hole], rtol=0, atol=1e-6)


def test_cutout_fills_a_square():
    torch.manual_seed(0)
    out = Cutout(size=0.5, p=1.0, fill=-7.0)(torch.zeros(3, 20, 20))
    holes = out == -7.0
    assert 0 < int(holes[0].sum()) <= 100 and torch.equal(holes[0], holes[1])
    assert torch.equal(Cutout(p=0.0)(torch.ones(3, 4, 4)), torch.ones(3, 4, 4))


def test_collate_stacks_and_reports_mismatch():
    batch = [
        (torch.zeros(3, 8, 8), torch.tensor([1.0, -1.0])),
        (torch.ones(3, 8, 8), torch.tensor([0.0, 1.0])),
    ]
    images, labels = collate_multilabel(batch)
    assert images.shape == (2, 3, 8, 8) and labels.tolist() == [[1.0, -1.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match=r"image 1 has shape \(3, 9, 8\)"):
        collate_multilabel([batch[0], (torch.zeros(3, 9, 8), torch.zeros(2))])
    with pytest.raises(ValueError, match="empty batch"):
        collate_multilabel([])


def test_dataloader_with_synthetic_and_transforms():
    from lcnet_fast.data import SyntheticScenes

    ds = SyntheticScenes(5, 64, 10, seed=0, transform=build_transforms(False, 2, 16))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_multilabel)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4, 10)
