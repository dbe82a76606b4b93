"""Attention capture (MHA2 weights) equals nn.MultiheadAttention's, and the attention pictures'
numbers come from it, mapped back onto the image per Crop-Forwarding view."""

import lcnet_reference
import numpy as np
import pytest
import torch

import lcnet_fast
from lcnet_fast.inference import preprocess_transform, to_uint8_chw
from lcnet_fast.visualize import VisualizeError, plot_attention, tokens_to_maps
from lcnet_fast.visualize.__main__ import main

SMALL = dict(backbone="test_resnet", image_size=64, d_model=32, num_heads=4, dim_feedforward=48)


def reference_mha2_weights(reference, images):
    """Run the reference with every LLCD layer's mha2 (an nn.MultiheadAttention) asked for its
    per-head weights; returns (logits, [(B, H, N, T)] per layer)."""
    captured = []
    for layer in reference.decoder:
        original = layer.mha2.forward

        def forward(query, key, value, need_weights=False, _original=original, **kwargs):
            out, weights = _original(query, key, value, need_weights=True,
                                     average_attn_weights=False, **kwargs)
            captured.append(weights)
            return out, None

        layer.mha2.forward = forward
    with torch.no_grad():
        logits = reference(images)
    return logits, captured


@pytest.mark.parametrize("level,layers,classes,batch", [(2, 2, 5, 2), (1, 1, 3, 1), (3, 1, 4, 1)])
def test_captured_weights_equal_nn_multiheadattention(level, layers, classes, batch):
    torch.manual_seed(level)
    config = dict(SMALL, crop_level=level, num_layers=layers)
    reference = lcnet_reference.LCNet(classes, **config).eval()
    fast = lcnet_fast.LCNet(classes, **config).eval()
    fast.load_state_dict(reference.state_dict(), strict=True)
    side = level * config["image_size"]
    images = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(7))
    ref_logits, ref_weights = reference_mha2_weights(reference, images)
    with torch.no_grad():
        logits, weights = fast(images, return_attention=True)
        plain = fast(images)
    assert len(weights) == layers == len(ref_weights)
    torch.testing.assert_close(logits, plain, rtol=0, atol=1e-5)  # capture changes no output
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-4)
    for got, want in zip(weights, ref_weights, strict=True):
        tokens = want.shape[-1]
        assert got.shape == want.shape == (batch, config["num_heads"], classes, tokens)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got.mean(1), want.mean(1), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got.sum(-1), torch.ones_like(got.sum(-1)), rtol=0, atol=1e-5)


def test_capture_refuses_mirrored_inputs():
    model = lcnet_fast.LCNet(3, crop_level=1, num_layers=1, mirror_inputs=True, **SMALL).eval()
    with pytest.raises(ValueError, match="mirror_inputs"):
        model(torch.randn(1, 3, 64, 64), return_attention=True)


def manual_maps(weights, level, h, w):
    """Loop version of the token -> image mapping (module doc of lcnet_fast.visualize.attention)."""
    grid = np.zeros((level * h, level * w))
    views = 1 if level == 1 else level * level + 1
    for t, value in enumerate(weights):
        view, rest = divmod(t, h * w)
        row, col = divmod(rest, w)
        assert view < views
        if level == 1:
            grid[row, col] += value
        elif view == 0:  # global view: covers the whole image, spread over its k x k cells
            grid[row * level:(row + 1) * level, col * level:(col + 1) * level] += value / level ** 2
        else:
            tile_row, tile_col = divmod(view - 1, level)
            grid[tile_row * h + row, tile_col * w + col] += value
    return grid


def test_tokens_to_maps_matches_the_loop_version():
    rng = np.random.default_rng(0)
    for level, h in ((1, 3), (2, 2), (3, 2)):
        views = 1 if level == 1 else level * level + 1
        weights = rng.random((2, views * h * h))
        weights /= weights.sum(-1, keepdims=True)
        maps = tokens_to_maps(weights, level)
        for row in range(2):
            expected = manual_maps(weights[row], level, h, h)
            np.testing.assert_allclose(maps["combined"][row], expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(maps["combined"].sum(axis=(-2, -1)), 1.0, rtol=1e-12)


def test_attention_pictures_come_from_the_model(tiny_checkpoint, tmp_path, assert_png):
    from lcnet_fast.data import SyntheticScenes, write_dataset

    path, model = tiny_checkpoint
    write_dataset(SyntheticScenes(1, 96, 4, seed=0, split="test"), str(tmp_path / "d"), "csv")
    image = str(tmp_path / "d" / "images" / "test_000000.png")
    result = plot_attention(path, image, labels="dog,tree", layers="all",
                            out_dir=str(tmp_path / "out"))
    assert [result["classes"][i] for i in result["labels"]] == ["dog", "tree"]
    assert result["layers"] == [0, 1]
    assert len(result["pngs"]) == 2
    for png in result["pngs"]:
        assert_png(png)
    assert result["image"].shape == (128, 128, 3) and result["image"].dtype == np.uint8
    # the same numbers, straight from the model
    loaded = lcnet_fast.LCNet.from_pretrained(path)
    assert loaded.preprocess["crop_level"] == 2 and loaded.preprocess["image_size"] == 64
    batch = preprocess_transform(loaded.preprocess)(to_uint8_chw(image)).unsqueeze(0)
    with torch.no_grad():
        logits, weights = model(batch, return_attention=True)
    np.testing.assert_allclose(result["probabilities"], torch.sigmoid(logits[0]).numpy(),
                               rtol=1e-5, atol=1e-6)
    saved = np.load(result["npz"])
    tokens = weights[0][0].shape[-1]
    h = int(round((tokens / 5) ** 0.5))
    for layer in (0, 1):
        averaged = weights[layer][0].mean(0).double().numpy()  # (N, T), heads averaged
        for name in ("dog", "tree"):
            label = result["classes"].index(name)
            np.testing.assert_allclose(saved[f"tokens_layer{layer + 1}_{name}"],
                                       averaged[label], rtol=1e-5, atol=1e-7)
            expected = manual_maps(averaged[label], 2, h, h)
            np.testing.assert_allclose(saved[f"layer{layer + 1}_{name}"], expected, rtol=1e-5,
                                       atol=1e-7)
            assert abs(saved[f"layer{layer + 1}_{name}"].sum() - 1.0) < 1e-5


def test_attention_cli_and_errors(tiny_checkpoint, tmp_path, assert_png):
    from PIL import Image

    path, _ = tiny_checkpoint
    picture = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(
        picture)
    out = tmp_path / "att"
    assert main(["attention", "--checkpoint", path, str(picture), "--layers", "last",
                 "--out", str(out)]) == 0  # default labels: the predicted ones (or the top one)
    pngs = sorted(out.glob("attention_*.png"))
    assert pngs and (out / "attention.npz").is_file()
    assert_png(pngs[0])
    with pytest.raises(VisualizeError, match="unknown label.*zebra.*cat, dog"):
        main(["attention", "--checkpoint", path, str(picture), "--labels", "zebra",
              "--out", str(out)])
    with pytest.raises(VisualizeError, match="layer 3 does not exist"):
        main(["attention", "--checkpoint", path, str(picture), "--layers", "3",
              "--out", str(out)])
