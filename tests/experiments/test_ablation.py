"""The ablation CLI on a tiny config: its table, JSON and PNG hold what the runs returned."""

import json
import math

import pytest

import lcnet_fast.train as train_module
from lcnet_fast.config import ConfigError
from lcnet_fast.experiments.__main__ import main as experiments_main
from lcnet_fast.experiments.ablation import aggregate, markdown, tiny_class_ap
from lcnet_fast.experiments.rows import expand_rows
from lcnet_fast.experiments.stats import fmt_mean_std

ROWS = "d1_c2,d1_c2_nograph"


def _argv(out, tiny_train_args, seeds: str, output: str, *flags: str) -> list[str]:
    """The ablation CLI over ROWS for 1 epoch, run directories under out/runs."""
    return [
        "ablation",
        *("--rows", ROWS, "--seeds", seeds, "--epochs", "1"),
        *("--output", output, "--runs-dir", str(out / "runs")),
        *flags,
        *tiny_train_args,
    ]


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory, tiny_train_args):
    out = tmp_path_factory.mktemp("ablation")
    returned = []
    original = train_module.train

    def recording_train(cfg, run_dir=None, resume=None):
        result = original(cfg, run_dir, resume)
        returned.append((cfg, run_dir, result))
        return result

    train_module.train = recording_train
    try:
        argv = _argv(out, tiny_train_args, "3", str(out / "results"))
        assert experiments_main(argv) == 0
    finally:
        train_module.train = original
    return out, returned


def test_outputs_equal_the_runs(ablation_run):
    out, returned = ablation_run
    result = json.loads((out / "results" / "ablation.json").read_text())
    assert [r["row"] for r in result["runs"]] == ["d1_c2", "d1_c2_nograph"]
    assert len(returned) == 2
    for run, (cfg, run_dir, got) in zip(result["runs"], returned, strict=True):
        # the right model settings reached the training run, with the requested budget and seed
        assert cfg.model.num_layers == 1 and cfg.model.crop_level == 2
        assert cfg.model.use_graph == (run["row"] == "d1_c2")
        assert cfg.train.epochs == 1 and cfg.train.seed == 3 and run["status"] == "trained"
        assert run["run_dir"] == run_dir
        for key in ("mAP", "CF1", "OF1", "CF1_top3"):
            assert run["metrics"][key] == got[key]
        assert run["per_class_AP"] == got["per_class_AP"]
        # ... and equal the run directory's own metrics.json
        on_disk = json.loads((out / "runs" / run["row"] / "seed3" / "metrics.json").read_text())
        assert on_disk["mAP"] == got["mAP"]
        tiny = [v for k, v in got["per_class_AP"].items() if k.startswith("tiny_")]
        assert tiny and math.isclose(run["tiny_AP"], sum(tiny) / len(tiny))
    table = (out / "results" / "ablation.md").read_text()
    for run, row in zip(result["runs"], result["rows"], strict=True):
        assert row["mAP"]["mean"] == run["metrics"]["mAP"]
        line = next(li for li in table.splitlines() if li.startswith(f"| `{run['row']}` | 1 |"))
        assert f"| {run['metrics']['mAP']:.1f} |" in line
        assert f"| {run['metrics']['CF1']:.1f} |" in line
    assert "Command: `python -m lcnet_fast.experiments ablation --rows d1_c2,d1_c2_nograph" in table
    png = (out / "results" / "ablation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_rerun_reuses_finished_runs(ablation_run, tiny_train_args, capsys):
    out, _ = ablation_run
    argv = _argv(out, tiny_train_args, "3", str(out / "again"), "--no-plot")
    assert experiments_main(argv) == 0
    first = json.loads((out / "results" / "ablation.json").read_text())
    again = json.loads((out / "again" / "ablation.json").read_text())
    assert [r["status"] for r in again["runs"]] == ["reused", "reused"]
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in first["runs"]]
    # another budget in the same run directories is refused, not silently mixed
    argv[argv.index("--epochs") + 1] = "2"
    assert experiments_main(argv) == 2
    assert "another config (differs in train.epochs)" in capsys.readouterr().err


def test_records_stand_in_for_missing_run_directories(ablation_run, tiny_train_args, capsys):
    """--records takes runs from a previous ablation JSON when their run directories are gone
    (they are not committed), and refuses a record whose command resolves to another config."""
    out, _ = ablation_run
    record = out / "results" / "ablation.json"
    elsewhere = ("--runs-dir", str(out / "no_runs_here"), "--no-plot")
    argv = _argv(out, tiny_train_args, "3", str(out / "recorded"), *elsewhere)
    original = train_module.train

    def refuse_to_train(*_args, **_kwargs):
        raise AssertionError("a recorded run was trained again")

    train_module.train = refuse_to_train
    try:
        assert experiments_main([*argv, "--records", str(record)]) == 0
    finally:
        train_module.train = original
    first = json.loads(record.read_text())
    got = json.loads((out / "recorded" / "ablation.json").read_text())
    assert [(r["row"], r["status"]) for r in got["runs"]] == [
        ("d1_c2", "recorded"),
        ("d1_c2_nograph", "recorded"),
    ]
    assert [r["metrics"] for r in got["runs"]] == [r["metrics"] for r in first["runs"]]
    assert [r["mAP"] for r in got["rows"]] == [r["mAP"] for r in first["rows"]]
    table = (out / "recorded" / "ablation.md").read_text()
    assert "2 of 2 runs are taken from --records" in table and "`d1_c2_nograph` seed 3." in table
    assert not (out / "no_runs_here").exists()
    # another budget: the record's command resolves to epochs 1, this one to epochs 2
    argv[argv.index("--epochs") + 1] = "2"
    assert experiments_main([*argv, "--records", str(record)]) == 2
    err = capsys.readouterr().err
    assert "holds d1_c2 seed 3 with another config (differs in train.epochs)" in err
    assert len(err.strip().splitlines()) == 1
    # a file that is not an ablation record, and one that does not exist: one line each
    (out / "not_a_record.json").write_text('{"runs": []}')
    not_a_record, gone = out / "not_a_record.json", out / "gone.json"
    bad_records = ((not_a_record, "not an ablation JSON"), (gone, "cannot read"))
    for bad, words in bad_records:
        assert experiments_main([*argv, "--records", str(bad)]) == 2
        assert words in capsys.readouterr().err
    assert experiments_main([*argv, "--records", str(record), "--fresh"]) == 2
    assert "pass one of the two" in capsys.readouterr().err


def _run(row, seed, m_ap, tiny):
    return {
        "row": row,
        "seed": seed,
        "input_size": 64,
        "metrics": {
            k: m_ap for k in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CF1_top3", "OF1_top3")
        },
        "per_class_AP": {"a": m_ap, "tiny_x": tiny},
        "tiny_AP": tiny,
    }


def _setup(seeds: list[int]) -> dict:
    """The setup block of a result, for markdown() on hand-made runs."""
    return dict(
        dataset="synthetic",
        train_images=1,
        test_images=1,
        num_classes=2,
        backbone="b",
        pretrained=False,
        view_size=64,
        d_model=8,
        epochs=1,
        batch_size=1,
        lr=1.0,
        seeds=seeds,
        weights="EMA",
    )


def test_aggregate_mean_std_and_paired_delta():
    rows = expand_rows("d1_c1,d2_c1")
    runs = [
        _run("d1_c1", 0, 80.0, 10.0),
        _run("d1_c1", 1, 82.0, 20.0),
        _run("d2_c1", 0, 81.0, 30.0),
        _run("d2_c1", 1, 85.0, 50.0),
    ]
    agg = aggregate(rows, runs, "d1_c1")
    assert agg[1]["mAP"]["mean"] == 83.0 and math.isclose(agg[1]["mAP"]["std"], 2**1.5)
    assert agg[1]["delta_mAP"]["values"] == [1.0, 3.0] and agg[1]["delta_mAP"]["mean"] == 2.0
    assert agg[0]["tiny_AP"]["tiny_x"]["mean"] == 15.0
    text = markdown(
        {
            "command": "c",
            "baseline": "d1_c1",
            "rows": agg,
            "setup": _setup([0, 1]),
        }
    )
    assert "| 83.0 ± 2.8 | +2.0 ± 1.4 |" in text
    assert fmt_mean_std([None, float("nan")]) == "n/a"


def test_paired_differences_and_pooled_rows_in_the_table():
    from lcnet_fast.experiments.ablation import paired_differences, parse_pairs

    runs = [
        _run("d2_c2", 0, 90.0, 80.0),
        _run("d2_c2", 1, 92.0, 84.0),
        _run("d2_c2", 2, 91.0, 81.0),
        _run("pooled_c2", 0, 89.0, 70.0),
        _run("pooled_c2", 1, 88.0, 75.0),  # seed 2 missing: paired over seeds 0 and 1 only
    ]
    pairs = paired_differences(runs, parse_pairs("d2_c2:pooled_c2"))
    assert pairs[0]["seeds"] == [0, 1]
    assert pairs[0]["mAP"]["values"] == [1.0, 4.0] and pairs[0]["mAP"]["mean"] == 2.5
    assert pairs[0]["tiny_AP"]["values"] == [10.0, 9.0]
    with pytest.raises(ConfigError, match="A:B"):
        parse_pairs("d2_c2-pooled_c2")
    rows = expand_rows("pooled_c2,d2_c2_literal,d4_c2")  # d4_c2: no finished run
    agg = aggregate(
        rows, [_run("pooled_c2", 0, 89.0, 70.0), _run("d2_c2_literal", 0, 80.0, 60.0)], "pooled_c2"
    )
    assert [entry["row"] for entry in agg] == ["pooled_c2", "d2_c2_literal"]
    text = markdown(
        {"command": "c", "baseline": "pooled_c2", "rows": agg, "setup": _setup([0]), "pairs": pairs}
    )
    assert "| `pooled_c2` | pooled head | - | 2 (" in text
    assert "| `d2_c2_literal` | 2 | literal | 2 (" in text and "| -9.0 |" in text
    assert "| `d2_c2` - `pooled_c2` | 2 | +2.5 ± 2.1 | +9.5 ± 0.7 |" in text
    assert "| `d2_c2_literal` | 60.0 |" in text and "d4_c2" not in text  # per-class tiny AP


def test_finished_only_and_configs_saved_before_a_new_key(ablation_run, tiny_train_args):
    out, _ = ablation_run
    # a run saved before train.max_weight_growth existed is still the same run
    config_path = out / "runs" / "d1_c2" / "seed3" / "config.yaml"
    original = config_path.read_text()
    assert "max_weight_growth" in original
    config_path.write_text(
        "\n".join(li for li in original.splitlines() if "max_weight_growth" not in li) + "\n"
    )
    # seed 4 was never trained: --finished-only leaves it out
    argv = _argv(out, tiny_train_args, "3,4", str(out / "finished"), "--no-plot", "--finished-only")
    try:
        assert experiments_main(argv) == 0
    finally:
        config_path.write_text(original)
    result = json.loads((out / "finished" / "ablation.json").read_text())
    assert [(r["row"], r["seed"], r["status"]) for r in result["runs"]] == [
        ("d1_c2", 3, "reused"),
        ("d1_c2_nograph", 3, "reused"),
    ]
    assert not (out / "runs" / "d1_c2" / "seed4").exists()
    table = (out / "finished" / "ablation.md").read_text()
    assert "| seeds |" in table and "| `d1_c2` | 1 | residual | 2 (32) | yes | no | 1 |" in table


def test_experiments_write_under_runs_by_default():
    """Committed results live in docs/experiments; a plain run from the repository root must not
    overwrite them."""
    from lcnet_fast.experiments.ablation import parse_args as ablation_args
    from lcnet_fast.experiments.cost import parse_args as cost_args

    assert ablation_args([])[0].output == "runs/experiments"
    assert cost_args([]).output == "runs/experiments"


def test_tiny_class_ap_averages_only_tiny_classes():
    assert tiny_class_ap({"tiny_a": 1.0, "tiny_b": 0.5, "cat": 0.0}) == 0.75
    assert tiny_class_ap({"cat": 0.5, "dog": 1.0}) is None
