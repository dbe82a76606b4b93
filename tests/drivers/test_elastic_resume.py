"""Elastic resume (issue 11): a run continues under another world size or per-process batch size.

The end-to-end test goes 1 process -> 2 processes (torchrun, gloo) -> 1 process inside one run and
compares it with the uninterrupted 1-process run: every epoch has all its images, the step count,
the learning rate of every epoch and the skipped-image count match, the schedule ends at its end.
"""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.engine import elastic
from lcnet_fast.train import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    return env


def _rows(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# stops a run (every rank at the same point) after its N-th save of `last`
STOPPER = """
import sys
from lcnet_fast import train
original, calls, stop_at = train.Run.save_last, {"n": 0}, int(sys.argv.pop(1))
def save_last(self):
    original(self)
    calls["n"] += 1
    if calls["n"] == stop_at:
        raise SystemExit(3)
train.Run.save_last = save_last
sys.argv[0] = "lcnet_fast.train"
sys.exit(train.cli())
"""


def test_geometry_arithmetic():
    old = elastic.Geometry(2, 4, 1)
    assert elastic.adapt(old, 1, 4) == elastic.Geometry(1, 4, 2)  # same 8 images per step
    assert elastic.adapt(elastic.Geometry(1, 8, 1), 2, 8) == elastic.Geometry(2, 8, 1)  # 16 now
    # 24 images, 1 x 4 x 2: 6 batches, 3 steps/epoch; 16 images of epoch 1 done at 2 x 4 x 1
    plan = elastic.continuation(elastic.Geometry(2, 4, 1), 24, 3, 0, 16)
    assert (plan.batch, plan.epoch_batches, plan.schedule_step, plan.total_steps) == (2, 3, 2, 9)
    # 1 x 8 -> 2 x 8 (16 per step): 8 of 24 done; 1 batch left, then 2 epochs of 1 step
    plan = elastic.continuation(elastic.Geometry(2, 8, 1), 24, 3, 0, 8)
    assert (plan.batch, plan.epoch_batches, plan.total_steps) == (0, 1, 3)
    assert plan.schedule_step == 0
    # old checkpoints without world_size: inferred from the position
    meta = {
        "config": {"train": {"batch_size": 4, "epochs": 3}, "optim": {"accumulation_steps": 1}},
        "position": {"batch": 2, "images": 16},
    }
    assert elastic.recorded_world_size(meta, 24, 1) == 2


def test_batch_size_change_on_resume_continues(tiny_args, tmp_path, stop_after_saves):
    """Same world, batch 8 -> 4: the rest of epoch 1 is cut into 4-image batches with 2
    accumulation steps, and the run ends at its scheduled step count."""
    run_dir = tmp_path / "run"
    stop_after_saves(tiny_args(run_dir), saves=1)
    assert main(["--resume", str(run_dir), "--batch-size", "4"]) == 0
    last = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta
    assert last["config"]["optim"]["accumulation_steps"] == 2
    assert last["scheduler"]["last_epoch"] == last["scheduler"]["total_steps"] == 6
    rows = _rows(run_dir)
    assert [r["train_images"] for r in rows] == ["24", "24"]
    assert [r["steps"] for r in rows] == ["3", "6"]


def test_one_to_two_to_one_process(tmp_path, tiny_args, stop_after_saves):
    from lcnet_fast.data import SyntheticScenes, write_dataset

    root = tmp_path / "data"
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        write_dataset(SyntheticScenes(n, 32, 4, seed=0, split=split), str(root), "csv")
    (root / "images" / "train_000007.png").write_bytes(b"broken")
    data = ("--dataset", "csv", "--data-root", str(root), "--csv-image-dir", "images")
    extra = (*data, "--csv-val", "val.csv", "--skip-bad-images", "--epochs", "3")
    extra += ("--batch-size", "4", "--accumulation-steps", "2")
    reference = tmp_path / "reference"
    assert main(tiny_args(reference, *extra)) == 0

    # 1 process: stopped after step 2 (16 of the 24 images of epoch 1)
    run_dir = tmp_path / "run"
    stop_after_saves(tiny_args(run_dir, *extra), saves=2)
    position = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta["position"]
    assert (position["epoch"], position["batch"], position["images"]) == (0, 4, 16)

    # 2 processes (4 images each, no accumulation): finish epoch 1, stop after step 5 in epoch 2
    stopper = tmp_path / "stopper.py"
    stopper.write_text(STOPPER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    command += ["2", str(stopper), "3", "--resume", str(run_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=500, env=_env())
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert "elastic resume: 1 process x batch 4 x accumulation 2 -> 2 processes x batch 4 x " in (
        done.stdout
    ), output
    assert "8 images per optimizer step kept" in done.stdout, output
    meta = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta
    assert meta["world_size"] == 2 and meta["step"] == 5, output
    assert (meta["position"]["epoch"], meta["position"]["images"]) == (1, 16)

    # back to 1 process: the rest of the run
    assert main(["--resume", str(run_dir)]) == 0
    final = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta
    assert final["scheduler"]["last_epoch"] == final["scheduler"]["total_steps"] == 9
    assert final["config"]["optim"]["accumulation_steps"] == 2
    rows, ref_rows = _rows(run_dir), _rows(reference)
    for key in ("epoch", "steps", "train_images", "lr", "skipped_train", "skipped_val"):
        assert [r[key] for r in rows] == [r[key] for r in ref_rows], key
    assert [r["skipped_train"] for r in rows] == ["1", "1", "1"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_images"] == 8 and torch.isfinite(torch.tensor(metrics["mAP"]))
