"""Checkpoint files: round trip, atomic replacement, clear errors for foreign or wrong files."""

import os

import pytest
import torch
from safetensors.torch import save_file

from lcnet_fast import checkpoint as ckpt
from lcnet_fast.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    load_weights_into,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    save_checkpoint,
)
from lcnet_fast.engine.model import build_model, model_from_checkpoint


def _meta(**extra):
    return {
        "kind": "weights",
        "classes": ["a", "b"],
        "weights": "ema",
        "holds_ema": True,
        "model_config": {"num_classes": 2},
        "preprocess": {},
        **extra,
    }


def test_round_trip_and_metadata(tmp_path):
    path = str(tmp_path / "c.safetensors")
    weights = {"ema.w": torch.randn(3, 4), "ema.b": torch.arange(3)}
    save_checkpoint(path, weights, _meta(epoch=2))
    loaded = load_checkpoint(path)
    assert (
        loaded.classes == ["a", "b"]
        and loaded.meta["holds_ema"] is True
        and loaded.meta["epoch"] == 2
    )
    got = loaded.reported_weights()
    assert (
        set(got) == {"w", "b"}
        and torch.equal(got["w"], weights["ema.w"])
        and torch.equal(got["b"], weights["ema.b"])
    )
    assert not loaded.has("model")


def test_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "c.safetensors")
    save_checkpoint(path, {"ema.w": torch.ones(2)}, _meta(epoch=1))
    before = open(path, "rb").read()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"ema.w": torch.zeros(2)}, _meta(epoch=2))
    assert open(path, "rb").read() == before  # the old checkpoint is untouched
    assert os.listdir(tmp_path) == ["c.safetensors"]  # and no temporary file is left behind


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors, rest = optimizer_state_to_tensors(optimizer.state_dict())
    stripped = {k[len("optimizer.") :]: v for k, v in tensors.items()}
    other = torch.optim.AdamW(model.parameters(), lr=5.0)
    other.load_state_dict(optimizer_state_from_tensors(stripped, rest))
    assert other.param_groups[0]["lr"] == 1e-3 and other.param_groups[0]["betas"] == (0.8, 0.9)
    for a, b in zip(optimizer.state.values(), other.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_foreign_and_broken_files_are_clear_errors(tmp_path):
    plain = str(tmp_path / "plain.safetensors")
    save_file({"x": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not an lcnet_fast checkpoint"):
        load_checkpoint(plain)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(str(garbage))
    with pytest.raises(CheckpointError, match="no checkpoint in run directory"):
        load_checkpoint(str(tmp_path))


def test_checkpoint_of_another_model_is_rejected(tiny_run):
    checkpoint = load_checkpoint(str(tiny_run))
    assert checkpoint.path.endswith("best.safetensors") and checkpoint.meta["kind"] == "weights"
    assert checkpoint.meta["weights"] == "ema" and checkpoint.meta["holds_ema"] is True
    assert len(checkpoint.classes) == 4
    # a model with more classes: the message names the differing tensors and shapes
    config = dict(checkpoint.model_config, num_classes=5, label_embedding_dim=5)
    other = build_model(config, pretrained=False)
    with pytest.raises(
        CheckpointMismatchError, match=r"head.weight: checkpoint \(4, 32\) vs model \(5, 32\)"
    ):
        load_weights_into(other, checkpoint.reported_weights(), checkpoint.path)
    # a deeper decoder: missing keys are listed
    deeper = build_model(dict(checkpoint.model_config, num_layers=2), pretrained=False)
    with pytest.raises(CheckpointMismatchError, match=r"missing key\(s\): decoder.1"):
        load_weights_into(deeper, checkpoint.reported_weights(), checkpoint.path)
    # asking for a different architecture up front names the setting
    with pytest.raises(CheckpointMismatchError, match="d_model: checkpoint 32 vs expected 64"):
        model_from_checkpoint(checkpoint, expected_config=dict(checkpoint.model_config, d_model=64))
