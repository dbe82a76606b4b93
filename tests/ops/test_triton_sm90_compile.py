"""Every Triton kernel compiles for an H200 (sm_90) at its GPU launch configurations, and fits
in an SM's shared memory, checked on this GPU-less machine.

The interpreter tests check what the kernels compute; they cannot see what only the GPU compiler
sees: code the interpreter's Python semantics accept but Triton's code generator rejects, and a
launch asking for more shared memory than an SM has ("out of resources" at the first GPU call).
Triton compiles to PTX and runs its bundled ptxas without a driver, so tests/ops/sm90_compile.py
does that in a subprocess (the kernels must be imported with the interpreter off). It also reads
each kernel's registers and stack bytes per thread: heavy register spills are slow on any GPU, so
they are checked too.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

SCRIPT = Path(__file__).with_name("sm90_compile.py")
#: H100/H200: at most 227 KiB of shared memory per block (opt-in dynamic shared memory).
SM90_MAX_SHARED_BYTES = 227 * 1024
#: Register spills per thread tolerated: a few registers (the bf16 Dh-256 dQ kernel with dropout
#: keeps 16 bytes); the launch configurations are chosen so that nothing spills more (the
#: figures, and those of the configurations they replaced: BENCHMARKS.md).
MAX_SPILL_BYTES = 32


@pytest.fixture(scope="module")
def results():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=SCRIPT.parents[2],
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def test_every_kernel_compiles_for_sm90(results):
    failed = {r["case"]: r["error"] for r in results if r["error"]}
    assert not failed, "\n\n".join(f"{case}:\n{error}" for case, error in failed.items())
    cases = {r["case"] for r in results}
    # the LLCD's own configuration, forward and backward, with and without dropout
    for name in ("fwd", "fwd-split", "combine", "delta", "dkdv", "dq"):
        for dropout in ("drop", "nodrop"):
            assert f"cross_attention-bf16-dh96-{dropout}-{name}" in cases
    assert any(c.startswith("dropout_add_layer_norm-d768") for c in cases)
    assert any(c.startswith("crop_views") for c in cases)


def test_every_kernel_fits_in_shared_memory(results):
    too_big = {
        r["case"]: r["shared"]
        for r in results
        if r["shared"] is not None and r["shared"] > SM90_MAX_SHARED_BYTES
    }
    assert not too_big, f"shared memory per block over {SM90_MAX_SHARED_BYTES} B: {too_big}"
    assert any(r["shared"] for r in results)  # the figure is really read


def test_no_kernel_spills_registers(results):
    spilled = {
        r["case"]: (r["regs"], r["stack"])
        for r in results
        if r["stack"] is not None and r["stack"] > MAX_SPILL_BYTES
    }
    assert not spilled, f"(registers, stack bytes) per thread over {MAX_SPILL_BYTES}: {spilled}"
    assert all(r["regs"] for r in results)  # cuobjdump's figures are really read
