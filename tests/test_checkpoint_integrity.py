"""Checkpoint integrity: a checksum of the tensor data written at save and checked at load; NaN/inf
weights refused at save and at load; checkpoints written before checksums still load."""

import json
import re

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from lcnet_fast.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKSUM_KEY,
    METADATA_KEY,
    CheckpointError,
    CheckpointIntegrityError,
    load_checkpoint,
    save_checkpoint,
)


def _meta(**extra):
    return {
        "kind": "training",
        "classes": ["a", "b"],
        "weights": "ema",
        "holds_ema": True,
        "model_config": {"num_classes": 2},
        "preprocess": {},
        "epoch": 2,
        **extra,
    }


def _tensors():
    """Every dtype/shape corner a real checkpoint has: fp32/bf16/fp16 weights, int64 counters,
    bool masks, 0-dim scalars, empty tensors, and an optimizer section."""
    return {
        "ema.w": torch.full((3, 4), 1.0),
        "ema.b": torch.arange(3, dtype=torch.int64),
        "ema.h": torch.linspace(-2, 2, 5, dtype=torch.bfloat16),
        "ema.f": torch.linspace(-1, 1, 4, dtype=torch.float16),
        "ema.mask": torch.tensor([True, False, True]),
        "ema.scale": torch.tensor(0.5),
        "ema.empty": torch.zeros(0, 2),
        "optimizer.0.exp_avg": torch.full((3, 4), 0.25),
    }


def _data_range(path, name):
    """(start, end) byte positions of tensor `name`'s data in a safetensors file: 8-byte
    little-endian header length, the JSON header, then the data (offsets relative to it)."""
    data = open(path, "rb").read()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    begin, end = header[name]["data_offsets"]
    return 8 + header_len + begin, 8 + header_len + end


def _flip_bit(path, position, bit):
    data = bytearray(open(path, "rb").read())
    data[position] ^= 1 << bit
    open(path, "wb").write(bytes(data))


def _write_legacy(path, tensors, meta):
    """A checkpoint as written before checksums existed (no checksum record), or any hand-written
    file that bypasses save_checkpoint."""
    meta = dict(meta, format=CHECKPOINT_FORMAT)
    payload = safetensors_bytes(tensors, metadata={METADATA_KEY: json.dumps(meta)})
    open(path, "wb").write(payload)


def test_valid_checkpoint_records_and_verifies_every_tensor(tmp_path):
    path = str(tmp_path / "ok.safetensors")
    tensors = _tensors()
    save_checkpoint(path, tensors, _meta())
    checkpoint = load_checkpoint(path)
    assert checkpoint.digests is not None and sorted(checkpoint.digests) == sorted(tensors)
    assert checkpoint.meta["epoch"] == 2 and "sha256" not in json.dumps(checkpoint.meta)
    for prefix in ("ema", "optimizer"):
        for key, value in checkpoint.tensors(prefix).items():
            original = tensors[f"{prefix}.{key}"]
            assert value.dtype == original.dtype and torch.equal(value, original), key


def test_one_flipped_bit_in_tensor_data_is_refused_naming_the_file(tmp_path):
    path = str(tmp_path / "flipped.safetensors")
    save_checkpoint(path, _tensors(), _meta())
    start, _ = _data_range(path, "ema.w")
    _flip_bit(path, start, 0)  # lowest mantissa bit of ema.w[0, 0]: still a finite 1.0000001
    checkpoint = load_checkpoint(path)  # metadata only: the damage is in the data
    with pytest.raises(
        CheckpointIntegrityError,
        match=re.escape(path) + r".*tensor data does not match its checksum \(corrupted file\)"
        r".*'ema.w'",
    ) as caught:
        checkpoint.reported_weights()
    assert "\n" not in str(caught.value) and isinstance(caught.value, CheckpointError)
    # verification is per tensor, as read: the undamaged optimizer section still loads
    assert torch.equal(checkpoint.tensors("optimizer")["0.exp_avg"], torch.full((3, 4), 0.25))


def test_exponent_bit_flip_is_refused_with_and_without_a_checksum(tmp_path):
    # float32 1.0 is 0x3F800000; setting bit 30 (bit 6 of the last little-endian byte) -> inf
    checked = str(tmp_path / "checked.safetensors")
    save_checkpoint(checked, _tensors(), _meta())
    start, _ = _data_range(checked, "ema.w")
    _flip_bit(checked, start + 3, 6)
    with pytest.raises(CheckpointIntegrityError, match=re.escape(checked) + ".*checksum"):
        load_checkpoint(checked).reported_weights()

    # an old file has no checksum: the flip turns 1.0 into inf, which the finiteness check refuses
    legacy = str(tmp_path / "legacy.safetensors")
    _write_legacy(legacy, _tensors(), _meta())
    start, _ = _data_range(legacy, "ema.w")
    _flip_bit(legacy, start + 3, 6)
    with pytest.raises(
        CheckpointIntegrityError, match=re.escape(legacy) + r".*'ema.w' holds 1 non-finite"
    ):
        load_checkpoint(legacy).reported_weights()


def test_metadata_edit_and_tensor_list_change_are_refused(tmp_path):
    path = str(tmp_path / "meta.safetensors")
    save_checkpoint(path, _tensors(), _meta())
    data = open(path, "rb").read()
    edited = data.replace(b'\\"epoch\\": 2', b'\\"epoch\\": 7')  # same length: header stays valid
    assert edited != data
    open(path, "wb").write(edited)
    with pytest.raises(CheckpointIntegrityError, match=re.escape(path) + ".*metadata differs"):
        load_checkpoint(path)

    # a tensor added to a file while keeping the original checksum record
    save_checkpoint(path, _tensors(), _meta())
    with open(path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        metadata = json.loads(handle.read(header_len))["__metadata__"]
    assert CHECKSUM_KEY in metadata
    extra = dict(_tensors(), **{"ema.extra": torch.ones(1)})
    open(path, "wb").write(safetensors_bytes(extra, metadata=metadata))
    with pytest.raises(CheckpointIntegrityError, match="list of tensors differs"):
        load_checkpoint(path)


def test_nan_weights_are_refused_at_save_naming_the_tensor(tmp_path):
    path = tmp_path / "nan.safetensors"
    save_checkpoint(str(path), _tensors(), _meta())
    before = path.read_bytes()
    for bad in (float("nan"), float("inf"), float("-inf")):
        tensors = _tensors()
        tensors["ema.h"] = tensors["ema.h"].clone()
        tensors["ema.h"][2] = bad
        with pytest.raises(
            CheckpointIntegrityError,
            match=f"refusing to save checkpoint {re.escape(str(path))}: tensor 'ema.h' holds 1 "
            r"non-finite value\(s\)",
        ):
            save_checkpoint(str(path), tensors, _meta())
    assert path.read_bytes() == before  # the previous checkpoint is untouched


def test_nan_weights_written_by_hand_are_refused_at_load(tmp_path):
    path = str(tmp_path / "hand.safetensors")
    tensors = _tensors()
    tensors["ema.w"][1, 2] = float("nan")
    tensors["ema.w"][0, 0] = float("inf")
    _write_legacy(path, tensors, _meta())
    with pytest.raises(
        CheckpointIntegrityError,
        match=re.escape(path) + r": tensor 'ema.w' holds 2 non-finite value\(s\) \(NaN/inf\)",
    ):
        load_checkpoint(path).reported_weights()


def test_checkpoint_without_checksum_still_loads(tmp_path):
    path = str(tmp_path / "old.safetensors")
    tensors = _tensors()
    _write_legacy(path, tensors, _meta())
    checkpoint = load_checkpoint(path)
    assert checkpoint.digests is None and checkpoint.meta["epoch"] == 2
    weights = checkpoint.reported_weights()
    assert set(weights) == {k[len("ema.") :] for k in tensors if k.startswith("ema.")}
    assert all(torch.equal(weights[k[len("ema.") :]], v) for k, v in tensors.items() if "ema" in k)
