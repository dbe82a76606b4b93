"""Collective timeout (issue 11): with one torchrun rank stopped (SIGSTOP), the other stops after
train.collective_timeout_s with one line naming the stalled rank, instead of waiting 30 minutes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.engine.distributed import is_collective_failure

# rank 1 stops itself (SIGSTOP) right after the 2nd checkpoint callback, writing its pid first
STOPPER = """
import os, signal, sys
from lcnet_fast import train
original, calls, pid_file = train.Run.save_last, {"n": 0}, sys.argv.pop(1)
def save_last(self):
    original(self)
    calls["n"] += 1
    if calls["n"] == 2 and self.dist.rank == 1:
        with open(pid_file + ".part", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(pid_file + ".part", pid_file)
        os.kill(os.getpid(), signal.SIGSTOP)
train.Run.save_last = save_last
sys.argv[0] = "lcnet_fast.train"
sys.exit(train.cli())
"""


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    return env


def test_timeouts_and_lost_peers_are_recognised():
    assert is_collective_failure(
        RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 5000ms for recv")
    )
    assert is_collective_failure(RuntimeError("Connection closed by peer [127.0.0.1]:4321"))
    assert not is_collective_failure(RuntimeError("shape mismatch"))
    assert not is_collective_failure(ValueError("timed out"))


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_stopped_rank_is_named(tiny_args, tmp_path):
    run_dir, pid_file = tmp_path / "run", tmp_path / "rank1.pid"
    stopper = tmp_path / "stopper.py"
    stopper.write_text(STOPPER)
    args = tiny_args(run_dir, "--epochs", "1", "--batch-size", "4", "--collective-timeout-s", "6")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    command += ["2", str(stopper), str(pid_file), *args]
    log_path = tmp_path / "out.txt"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.time() + 500
        while time.time() < deadline and process.poll() is None:
            if "error: " in log_path.read_text():
                break
            time.sleep(0.5)
    finally:
        if pid_file.exists():  # let torchrun end the stopped rank at once
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log_path.read_text()
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    print("\n".join(errors))
    assert pid_file.exists(), output[-3000:]
    assert len(errors) == 1, output[-3000:]
    assert errors[0].startswith("error: rank 0 of 2: a collective operation did not complete")
    assert "train.collective_timeout_s = 6 s: rank 1 stopped responding" in errors[0]
    # the checkpoint of step 2 (saved before rank 1 stopped) is intact
    assert load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta["step"] == 2
