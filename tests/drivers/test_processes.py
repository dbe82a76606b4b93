"""End-to-end subprocess tests: SIGKILL + --resume, and 2-process DDP via torchrun (gloo)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.train import main as train_main


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_then_resume_completes(tiny_args, tmp_path):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.safetensors"
    log = open(tmp_path / "out.txt", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "lcnet_fast.train", *tiny_args(run_dir, "--epochs", "6")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
    )
    try:
        deadline = time.time() + 240
        while not last.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert last.exists(), (
            f"no checkpoint appeared; output:\n{(tmp_path / 'out.txt').read_text()}"
        )
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        log.close()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    killed_at = load_checkpoint(str(last)).meta["position"]

    assert train_main(["--resume", str(run_dir)]) == 0
    final = load_checkpoint(str(last)).meta
    assert final["position"]["epoch"] == 6 and final["step"] == 18 and killed_at["epoch"] < 6
    with open(run_dir / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["steps"]) for r in rows] == [3, 6, 9, 12, 15, 18]
    assert json.loads((run_dir / "metrics.json").read_text())["num_images"] == 8


def test_torchrun_two_processes_gloo(tiny_args, tmp_path):
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lcnet_fast.train",
        *tiny_args(run_dir, "--epochs", "1", "--batch-size", "4"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, env=_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 processes" in done.stdout
    assert done.stdout.count("test split:") == 1  # only rank 0 prints the table
    # 24 images over 2 ranks, 4 per rank-batch: 3 steps
    assert load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta["step"] == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_images"] == 8  # gathered from both ranks, no padding
    # the gathered metrics equal a single-process evaluation of the saved weights
    out = tmp_path / "eval.json"
    assert (
        evaluate_main(["--checkpoint", str(run_dir), "--output", str(out), "--device", "cpu"]) == 0
    )
    again = json.loads(out.read_text())
    for key in ("mAP", "CF1", "OF1", "CF1_top3"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-6), key
