"""benchmarks/gpu_check.sh, statically: it must parse, and its stage limits must fit one device
call (the device tool gives one command at most 600 s; the script's limits leave 60 s of that for
the environment header, the summary and the copies between stages)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
BUDGET_S = 540  # the worst case the script's header promises


def stage_limits(text: str) -> dict[str, int]:
    """Every top-level `stage NAME SECONDS ...` and `bench NAME SECONDS ...` call."""
    limits = {m[1]: int(m[2]) for m in re.finditer(r"^stage ([\w-]+) (\d+) ", text, re.M)}
    for m in re.finditer(r"^bench ([\w-]+) (\d+) ", text, re.M):
        limits[f"bench-{m[1]}"] = int(m[2])
    return limits


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_stage_limits_fit_the_budget():
    limits = stage_limits(SCRIPT.read_text())
    # the stages that produce the figures are all there
    for name in ("build", "gpu-tests", "bench-warmup", "bench-cross_attention",
                 "bench-crop_views", "bench-dropout_add_layer_norm", "bench-lcnet-single-image",
                 "bench-lcnet-one-call", "bench-lcnet-stack", "bench-lcnet-stack-compiled",
                 "cost-tables"):
        assert name in limits, f"stage {name} is missing from gpu_check.sh"
    assert sum(limits.values()) <= BUDGET_S, limits
    assert f"{BUDGET_S} s" in SCRIPT.read_text(), "the header's budget sentence is out of date"
