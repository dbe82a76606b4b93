"""Checkpoints: one safetensors file per checkpoint, written atomically.

Layout of a checkpoint file (``last.safetensors``, ``best.safetensors``):

* tensors, namespaced by prefix: ``model.<key>`` (the trained weights), ``ema.<key>`` (the EMA
  weights), ``optimizer.<param index>.<state name>`` (AdamW moments; training checkpoints only);
* the safetensors header metadata ``lcnet_fast`` holds one JSON document: format version, ``kind``
  (``training`` = everything needed to resume, ``weights`` = only the reported weights),
  ``classes``, ``model_config`` (the LCNet constructor arguments), ``preprocess`` (crop level,
  view size, mean, std), ``weights`` (the prefix evaluate/predict use: ``ema`` or ``model``),
  ``holds_ema``, epoch, step, the run config, and for training checkpoints the optimizer's
  non-tensor state, the scheduler, EMA update count and the best-so-far record;
* the header metadata ``lcnet_fast.sha256`` (files written since the integrity check; older files
  lack it and load unverified) holds a JSON document ``{"algorithm": "sha256", "meta": <digest of
  the lcnet_fast JSON text>, "tensors": {name: <digest of name, dtype, shape and raw bytes>}}``.

Integrity: a checkpoint is refused, with one line naming the file and the tensor, when its tensor
data does not match the recorded checksum (a flipped bit on disk or in transit) or when a floating
tensor holds NaN/inf (also for files without a checksum); ``save_checkpoint`` refuses to write
non-finite weights in the first place. Trade-off: one digest per tensor rather than one for the
whole file, checked lazily as ``Checkpoint.tensors(prefix)`` reads each tensor, so evaluate/predict
hash only the weights they use (not a training checkpoint's optimizer moments, twice the size), the
error can name the corrupted tensor, and reading only the metadata (resume bookkeeping, tests)
stays free; the cost is about 100 bytes of header per tensor, and corruption in tensors nobody
reads goes unnoticed until something reads them. The metadata text and the list of tensor names
are checked against the record when the file is opened. Hashing runs at disk speed (hashlib over
the bytes already read, no copy), well under a second for a few hundred MB.

Why one file: a single ``os.replace`` of a fully written and fsynced temporary file is atomic, so a
crash (SIGKILL, power loss) leaves either the old checkpoint or the new one, never a mix of weights
from one step and optimizer state from another. Why safetensors + JSON: loading never unpickles, so
a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from lcnet_fast.errors import CheckpointError, CheckpointIntegrityError, CheckpointMismatchError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointIntegrityError",
    "CheckpointMismatchError",
    "Checkpoint",
    "find_checkpoint",
    "load_checkpoint",
    "load_weights_into",
    "optimizer_state_from_tensors",
    "optimizer_state_to_tensors",
    "remove_stale_temp_files",
    "save_checkpoint",
    "write_bytes_atomic",
]

CHECKPOINT_FORMAT = "lcnet_fast.checkpoint/1"
METADATA_KEY = "lcnet_fast"
CHECKSUM_KEY = "lcnet_fast.sha256"


def tensor_digest(name: str, tensor: torch.Tensor) -> str:
    """sha256 (hex) over a tensor's name, dtype, shape and raw CPU bytes."""
    digest = hashlib.sha256(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel():
        digest.update(flat.view(torch.uint8).numpy())  # a view of the bytes: nothing is copied
    return digest.hexdigest()


def count_non_finite(tensor: torch.Tensor) -> int:
    """How many NaN/inf values a floating tensor holds (0 for integer and bool tensors)."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    return int((~torch.isfinite(tensor)).sum())


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


_TEMP_NAME = re.compile(r"\.tmp(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but belongs to someone else, or cannot tell
        return True
    return True


def remove_stale_temp_files(directory: str) -> list[str]:
    """Remove the ``<name>.tmp<pid>`` files that write_bytes_atomic (and config.save_config) left
    in `directory` when their writer was killed mid-save: those whose pid is no longer a live
    process. A temporary file of a live process (possibly a concurrent writer) is left alone.
    Returns the removed paths; a missing directory is no error."""
    removed = []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in sorted(names):
        match = _TEMP_NAME.search(name)
        path = os.path.join(directory, name)
        if match is None or not os.path.isfile(path):
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


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
    for name in sorted(flat):
        bad = count_non_finite(flat[name])
        if bad:
            raise CheckpointIntegrityError(
                f"refusing to save checkpoint {path}: tensor {name!r} holds {bad} non-finite "
                f"value(s) (NaN/inf)"
            )
    meta_text = json.dumps(meta)
    record = {
        "algorithm": "sha256",
        "meta": hashlib.sha256(meta_text.encode()).hexdigest(),
        "tensors": {name: tensor_digest(name, flat[name]) for name in sorted(flat)},
    }
    payload = safetensors_bytes(
        flat, metadata={METADATA_KEY: meta_text, CHECKSUM_KEY: json.dumps(record)}
    )
    write_bytes_atomic(path, payload)


class Checkpoint:
    """A loaded checkpoint: `meta` (dict) and lazy access to its tensors by prefix.

    `digests` ({name: sha256}) is the file's checksum record, None for a file written before
    checksums existed; every tensor read through `tensors` is checked against it and for NaN/inf.
    """

    def __init__(
        self,
        path: str,
        meta: dict[str, Any],
        keys: list[str],
        digests: dict[str, str] | None = None,
    ):
        self.path, self.meta, self.keys, self.digests = path, meta, keys, digests

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """All tensors under `prefix.` with the prefix stripped (e.g. tensors('ema')), each
        verified against the checksum (when the file has one) and for NaN/inf."""
        start = f"{prefix}."
        out = {}
        try:
            with safe_open(self.path, framework="pt", device="cpu") as handle:
                for key in self.keys:
                    if key.startswith(start):
                        out[key[len(start) :]] = self._verified(key, handle.get_tensor(key))
        except (SafetensorError, OSError) as exc:  # changed or truncated since it was opened
            raise CheckpointError(f"cannot read tensors of checkpoint {self.path}: {exc}") from exc
        return out

    def _verified(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        if self.digests is not None and tensor_digest(key, tensor) != self.digests.get(key):
            raise CheckpointIntegrityError(
                f"{self.path}: tensor data does not match its checksum (corrupted file): "
                f"tensor {key!r}"
            )
        bad = count_non_finite(tensor)
        if bad:
            raise CheckpointIntegrityError(
                f"{self.path}: tensor {key!r} holds {bad} non-finite value(s) (NaN/inf); "
                f"refusing to load it"
            )
        return tensor

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
    digests = _checksum_record(path, header, keys)
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: unreadable '{METADATA_KEY}' metadata: {exc}") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {meta.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r}"
        )
    return Checkpoint(path, meta, keys, digests)


def _checksum_record(path: str, header: dict[str, str], keys: list[str]) -> dict[str, str] | None:
    """The per-tensor digests after checking the metadata text and the tensor names against the
    record; None for a checkpoint written before checksums (loaded unverified)."""
    if CHECKSUM_KEY not in header:
        return None
    corrupted = f"{path}: checkpoint does not match its checksum (corrupted file)"
    try:
        record = json.loads(header[CHECKSUM_KEY])
        algorithm, meta_digest, digests = record["algorithm"], record["meta"], record["tensors"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointIntegrityError(f"{corrupted}: unreadable checksum record") from exc
    if algorithm != "sha256":
        raise CheckpointError(f"{path}: unsupported checksum algorithm {algorithm!r}")
    if hashlib.sha256(header[METADATA_KEY].encode()).hexdigest() != meta_digest:
        raise CheckpointIntegrityError(f"{corrupted}: the '{METADATA_KEY}' metadata differs")
    if not isinstance(digests, dict) or sorted(digests) != sorted(keys):
        raise CheckpointIntegrityError(f"{corrupted}: the list of tensors differs")
    return digests


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
