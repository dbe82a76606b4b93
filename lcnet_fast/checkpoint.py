"""Checkpoints: one safetensors file per checkpoint, written atomically.

Layout of a checkpoint file (``last.safetensors``, ``best.safetensors``):

* tensors, namespaced by prefix: ``model.<key>`` (the trained weights), ``ema.<key>`` (the EMA
  weights), ``optimizer.<param index>.<state name>`` (AdamW moments; training checkpoints only);
* the safetensors header metadata ``lcnet_fast`` holds one JSON document: format version, ``kind``
  (``training`` = everything needed to resume, ``weights`` = only the reported weights),
  ``classes``, ``model_config`` (the LCNet constructor arguments), ``preprocess`` (crop level,
  view size, mean, std), ``weights`` (the prefix evaluate/predict use: ``ema`` or ``model``),
  ``holds_ema``, epoch, step, the run config, and for training checkpoints the optimizer's
  non-tensor state, the scheduler, EMA update count and the best-so-far record.

Why one file: a single ``os.replace`` of a fully written and fsynced temporary file is atomic, so a
crash (SIGKILL, power loss) leaves either the old checkpoint or the new one, never a mix of weights
from one step and optimizer state from another. Why safetensors + JSON: loading never unpickles, so
a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointMismatchError",
    "Checkpoint",
    "find_checkpoint",
    "load_checkpoint",
    "load_weights_into",
    "optimizer_state_from_tensors",
    "optimizer_state_to_tensors",
    "save_checkpoint",
    "write_bytes_atomic",
]

CHECKPOINT_FORMAT = "lcnet_fast.checkpoint/1"
METADATA_KEY = "lcnet_fast"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not an lcnet_fast checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit the model/dataset it is loaded for; the message says how."""


def write_bytes_atomic(path: str, payload: bytes) -> None:
    """Write to a temporary file in the same directory, fsync it, then os.replace it over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # only when something above failed before the replace
            os.remove(tmp)
    try:  # make the rename itself durable; not every filesystem lets a directory be opened
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Atomically write `tensors` (already prefixed) and the JSON `meta` as one safetensors file."""
    if "weights" not in meta or f"{meta['weights']}." not in {
        k.split(".", 1)[0] + "." for k in tensors
    }:
        raise CheckpointError(
            "checkpoint meta 'weights' must name a tensor prefix present in the file"
        )
    meta = dict(meta, format=CHECKPOINT_FORMAT)
    flat = {name: value.detach().to("cpu").contiguous() for name, value in tensors.items()}
    payload = safetensors_bytes(flat, metadata={METADATA_KEY: json.dumps(meta)})
    write_bytes_atomic(path, payload)


class Checkpoint:
    """A loaded checkpoint: `meta` (dict) and lazy access to its tensors by prefix."""

    def __init__(self, path: str, meta: dict[str, Any], keys: list[str]):
        self.path, self.meta, self.keys = path, meta, keys

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """All tensors under `prefix.` with the prefix stripped (e.g. tensors('ema'))."""
        start = f"{prefix}."
        with safe_open(self.path, framework="pt", device="cpu") as handle:
            return {
                key[len(start) :]: handle.get_tensor(key)
                for key in self.keys
                if key.startswith(start)
            }

    def has(self, prefix: str) -> bool:
        return any(key.startswith(f"{prefix}.") for key in self.keys)

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def model_config(self) -> dict[str, Any]:
        return dict(self.meta["model_config"])

    def reported_weights(self) -> dict[str, torch.Tensor]:
        """The weights evaluate/predict use (the EMA weights when the run chose to report those)."""
        return self.tensors(self.meta["weights"])


def find_checkpoint(path: str) -> str:
    """A checkpoint file, or a run directory -> its best checkpoint if there is one, else last."""
    if os.path.isdir(path):
        for name in ("best.safetensors", "last.safetensors"):
            candidate = os.path.join(path, "checkpoints", name)
            if os.path.isfile(candidate):
                return candidate
        raise CheckpointError(
            f"no checkpoint in run directory {path} (looked for checkpoints/best.safetensors "
            f"and checkpoints/last.safetensors)"
        )
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: str) -> Checkpoint:
    """Open a checkpoint file or run directory; read its metadata (tensors stay on disk)."""
    path = find_checkpoint(path)
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            keys = list(handle.keys())
    except Exception as exc:  # safetensors raises its own error types for truncated/garbage files
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if METADATA_KEY not in header:
        raise CheckpointError(
            f"{path} is a safetensors file but not an lcnet_fast checkpoint "
            f"(no '{METADATA_KEY}' metadata)"
        )
    meta = json.loads(header[METADATA_KEY])
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {meta.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r}"
        )
    return Checkpoint(path, meta, keys)


def describe_differences(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], limit: int = 8
) -> list[str]:
    """Readable differences between two state dicts (missing/unexpected keys, shape changes)."""
    lines = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [
        k for k in expected if k in found and tuple(expected[k].shape) != tuple(found[k].shape)
    ]
    if missing:
        lines.append(
            f"{len(missing)} missing key(s): {', '.join(missing[:limit])}"
            + (" ..." if len(missing) > limit else "")
        )
    if unexpected:
        lines.append(
            f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:limit])}"
            + (" ..." if len(unexpected) > limit else "")
        )
    for key in reshaped[:limit]:
        lines.append(
            f"{key}: checkpoint {tuple(found[key].shape)} vs model {tuple(expected[key].shape)}"
        )
    if len(reshaped) > limit:
        lines.append(f"... and {len(reshaped) - limit} more shape difference(s)")
    return lines


def load_weights_into(
    module: torch.nn.Module, weights: dict[str, torch.Tensor], source: str
) -> None:
    """Strict load with a message listing every mismatch (never strict=False)."""
    expected = module.state_dict()
    problems = describe_differences(expected, weights)
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint {source} does not fit this model:\n  " + "\n  ".join(problems)
        )
    module.load_state_dict(weights, strict=True)


def compare_model_configs(checkpoint_config: dict, model_config: dict, source: str) -> None:
    """Raise CheckpointMismatchError listing the architecture settings that differ."""
    keys = sorted(set(checkpoint_config) | set(model_config))
    diffs = [
        f"{k}: checkpoint {checkpoint_config.get(k)!r} vs expected {model_config.get(k)!r}"
        for k in keys
        if checkpoint_config.get(k) != model_config.get(k)
    ]
    if diffs:
        raise CheckpointMismatchError(
            f"checkpoint {source} was trained with a different model:\n  " + "\n  ".join(diffs)
        )


def compare_classes(checkpoint_classes: list[str], dataset_classes: list[str], source: str) -> None:
    if list(checkpoint_classes) == list(dataset_classes):
        return
    detail = [
        f"checkpoint has {len(checkpoint_classes)} classes, dataset has {len(dataset_classes)}"
    ]
    only_ckpt = [c for c in checkpoint_classes if c not in dataset_classes]
    only_data = [c for c in dataset_classes if c not in checkpoint_classes]
    if only_ckpt:
        detail.append(f"only in checkpoint: {', '.join(only_ckpt[:8])}")
    if only_data:
        detail.append(f"only in dataset: {', '.join(only_data[:8])}")
    if not only_ckpt and not only_data:
        detail.append("same names in a different order")
    raise CheckpointMismatchError(
        f"checkpoint {source} does not match the dataset's classes: " + "; ".join(detail)
    )


# ----------------------------------------------------------------------------- optimizer state


def optimizer_state_to_tensors(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (safetensors) and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for param_id, state in state_dict["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param_id}.{name}"] = value
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of optimizer_state_to_tensors (`tensors` with the 'optimizer.' prefix stripped)."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, values in rest.get("scalars", {}).items():
        state.setdefault(int(param_id), {}).update(values)
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):  # JSON turned the tuple into a list
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}
