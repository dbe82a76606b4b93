"""Validate before writing (issue 11): a resume or a new run that cannot start changes nothing on
disk; leftover temporary files of killed saves are removed when a run (re)starts."""

import os
import shutil
import subprocess
import sys

import pytest

from lcnet_fast import train as train_module
from lcnet_fast.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from lcnet_fast.engine import run as run_module
from lcnet_fast.engine.data import EmptySplitError
from lcnet_fast.train import main


def _snapshot(directory):
    """{relative path: bytes} of every file under directory."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, directory)] = handle.read()
    return out


def _rewrite_last(run_dir, **meta_changes):
    """Re-save run_dir's last checkpoint with some metadata changed (a valid, checksummed file)."""
    path = str(run_dir / "checkpoints" / "last.safetensors")
    checkpoint = load_checkpoint(path)
    tensors = {}
    for prefix in ("model", "ema", "optimizer"):
        tensors.update({f"{prefix}.{k}": v for k, v in checkpoint.tensors(prefix).items()})
    meta = dict(checkpoint.meta, **meta_changes)
    meta.pop("format")
    save_checkpoint(path, tensors, meta)


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_failed_resume_changes_nothing(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    last = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    classes = list(reversed(last.meta["classes"]))  # same names, other order: another label space
    _rewrite_last(run_dir, classes=classes, position=dict(last.meta["position"], epoch=1))
    stale = run_dir / "checkpoints" / f"last.safetensors.tmp{_dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    before = _snapshot(run_dir)
    with pytest.raises(CheckpointMismatchError, match="other classes"):
        main(["--resume", str(run_dir), "--log-every", "5"])  # log_every: config.yaml would change
    assert _snapshot(run_dir) == before  # config.yaml, log.csv (2 rows), the temp file: untouched


def test_failed_new_run_leaves_no_directory(tiny_args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a for a in tiny_args("unused") if a not in ("--output", "unused")]
    with pytest.raises(EmptySplitError):
        main([*args, "--synthetic-num-val", "0"])  # default run dir runs/<timestamp>
    assert not (tmp_path / "runs").exists()
    with pytest.raises(EmptySplitError):
        main(tiny_args(tmp_path / "out" / "run", "--synthetic-num-val", "0"))
    assert not (tmp_path / "out").exists()


def test_run_failing_before_its_first_checkpoint_removes_only_what_it_created(
    tiny_args, tmp_path, monkeypatch
):
    """A NaN loss at the first step: no checkpoint, so the attempt's files go; a user's file in
    an existing --output directory stays."""
    real = run_module.build_criterion  # what Run (lcnet_fast/engine/run.py) calls

    def nan_loss(cfg):
        criterion = real(cfg)
        return lambda logits, targets: criterion(logits, targets) * float("nan")

    monkeypatch.setattr(run_module, "build_criterion", nan_loss)
    with pytest.raises(train_module.NonFiniteLossError):
        main(tiny_args(tmp_path / "new"))
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    with pytest.raises(train_module.NonFiniteLossError):
        main(tiny_args(existing))
    assert sorted(os.listdir(existing)) == ["notes.txt"]


def test_stale_temp_files_are_removed_on_resume(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    dead = run_dir / "checkpoints" / f"last.safetensors.tmp{_dead_pid()}"
    dead_log = run_dir / f"log.csv.tmp{_dead_pid()}"
    alive = run_dir / "checkpoints" / f"best.safetensors.tmp{os.getppid()}"  # a live writer
    for path in (dead, dead_log, alive):
        path.write_bytes(b"partial")
    assert main(["--resume", str(run_dir)]) == 0
    assert not dead.exists() and not dead_log.exists() and alive.exists()
