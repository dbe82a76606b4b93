"""The cost CLI on a tiny config: both models measured, positive times and memory."""

import json

import pytest
import torch

from lcnet_fast.experiments.__main__ import main as experiments_main
from lcnet_fast.experiments.cost import cpu_step_peak_growth, parse_grid


def test_cost_cli_tiny(tmp_path):
    argv = [
        "cost",
        "--grid",
        "1x1,2x2",
        "--backbone",
        "test_resnet",
        "--image-size",
        "16",
        "--d-model",
        "32",
        "--num-heads",
        "2",
        "--dim-feedforward",
        "64",
        "--num-classes",
        "4",
        "--batch-size",
        "2",
        "--rounds",
        "2",
        "--device",
        "cpu",
        "--output",
        str(tmp_path),
    ]
    assert experiments_main(argv) == 0
    result = json.loads((tmp_path / "cost_cpu.json").read_text())
    assert [(r["num_layers"], r["crop_level"]) for r in result["rows"]] == [(1, 1), (2, 2)]
    for row in result["rows"]:
        for model in ("fast", "reference"):
            assert row[model]["train_s"] > 0 and row[model]["infer_s"] > 0
            assert len(row[model]["samples"]["train_s"]) == 2
            assert row[model]["peak_mb"] > 0
        assert row["train_s_ratio"] > 0 and row["infer_s_ratio"] > 0
    assert result["rows"][1]["input_size"] == 32 and result["rows"][1]["views"] == 5
    table = (tmp_path / "cost_cpu.md").read_text()
    assert table.count("\n| ") == 3  # header + 2 rows
    assert (tmp_path / "cost_cpu.png").read_bytes().startswith(b"\x89PNG")


def test_cost_keeps_the_rows_measured_before_a_failure(tmp_path, monkeypatch):
    """The tables are rewritten after every configuration: a run cut short by a time limit or
    a crash in a later (bigger) configuration keeps what it measured."""
    from lcnet_fast.experiments import cost

    def measure(args, depth, crop, device, autocast_dtype):
        if crop == 2:
            raise RuntimeError("CUDA out of memory (planted)")
        sample = {"train_s": 1.0, "infer_s": 0.01, "peak_mb": None}
        return {"num_layers": depth, "crop_level": crop, "input_size": 16 * crop, "views": 1,
                "fast": sample, "reference": sample, "train_s_ratio": 1.0, "infer_s_ratio": 1.0,
                "peak_mb_ratio": None}

    monkeypatch.setattr(cost, "measure_config", measure)
    with pytest.raises(RuntimeError, match="planted"):
        cost.run_cost(["--grid", "1x1,2x2", "--device", "cpu", "--no-plot",
                       "--output", str(tmp_path)])
    result = json.loads((tmp_path / "cost_cpu.json").read_text())
    assert [(r["num_layers"], r["crop_level"]) for r in result["rows"]] == [(1, 1)]
    assert (tmp_path / "cost_cpu.md").read_text().count("\n| ") == 2  # header + 1 row


def test_cpu_peak_growth_sees_a_known_allocation():
    def step():
        a = torch.ones(4 * 2**20 // 4)  # 4 MiB
        b = a * 2  # 4 MiB more while a is alive
        del a
        return b.sum()

    peak = cpu_step_peak_growth(step)
    assert 8 * 2**20 <= peak < 12 * 2**20


def test_grid_parsing():
    assert parse_grid("paper")[-1] == (6, 4) and len(parse_grid("full")) == 16
    assert parse_grid("1x1, 6x3") == [(1, 1), (6, 3)]
    with pytest.raises(ValueError):
        parse_grid("6-3")
