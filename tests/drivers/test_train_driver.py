"""The training driver in-process: run directory contents, resume == uninterrupted, NaN stop,
empty split, bad images."""

import csv
import json

import pytest
import torch
import yaml

from lcnet_fast import train as train_module
from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.engine import run as run_module
from lcnet_fast.engine.data import EmptySplitError
from lcnet_fast.engine.loop import NonFiniteLossError
from lcnet_fast.train import main


def _csv_rows(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_directory_contents(tiny_run, no_temp_files):
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["model"]["backbone"] == "test_resnet" and config["train"]["epochs"] == 2
    rows = _csv_rows(tiny_run)
    assert [int(r["epoch"]) for r in rows] == [1, 2] and [int(r["steps"]) for r in rows] == [3, 6]
    last = load_checkpoint(str(tiny_run / "checkpoints" / "last.safetensors"))
    assert (
        last.meta["kind"] == "training"
        and last.meta["position"]["epoch"] == 2
        and last.meta["step"] == 6
    )
    assert last.has("model") and last.has("ema") and last.has("optimizer")
    best = load_checkpoint(str(tiny_run / "checkpoints" / "best.safetensors"))
    assert best.keys and all(k.startswith("ema.") for k in best.keys)  # only the reported weights
    # best is chosen on the validation split and recorded as such
    assert (
        last.meta["best"]["metric"] == "mAP"
        and best.meta["val_metrics"]["mAP"] == last.meta["best"]["value"]
    )
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert (
        metrics["split"] == "test"
        and metrics["weights"] == "ema"
        and metrics["source"].startswith("best")
    )
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "OF1_top3"):
        assert isinstance(metrics[key], float)
    assert no_temp_files(tiny_run)


def test_resume_mid_epoch_equals_uninterrupted(tiny_run, tiny_args, tmp_path, stop_after_saves):
    """Stop after optimizer step 2 (inside epoch 1 of 3 steps), resume, compare to tiny_run."""
    run_dir = tmp_path / "run"
    stop_after_saves(tiny_args(run_dir), saves=2)
    stopped = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    assert stopped.meta["position"]["epoch"] == 0 and stopped.meta["position"]["batch"] == 2

    assert main(["--resume", str(run_dir)]) == 0
    resumed = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    reference = load_checkpoint(str(tiny_run / "checkpoints" / "last.safetensors"))
    for prefix in ("model", "ema", "optimizer"):
        a, b = resumed.tensors(prefix), reference.tensors(prefix)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{prefix}.{key}")
    assert resumed.meta["scheduler"] == reference.meta["scheduler"]
    ref_rows, rows = _csv_rows(tiny_run), _csv_rows(run_dir)
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in ref_rows]
    assert (
        json.loads((run_dir / "metrics.json").read_text())["mAP"]
        == json.loads((tiny_run / "metrics.json").read_text())["mAP"]
    )


def test_resume_refuses_to_change_the_run(tiny_run):
    from lcnet_fast.config import ConfigError

    with pytest.raises(ConfigError, match="cannot change: optim.lr"):
        main(["--resume", str(tiny_run), "--lr", "0.1"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tiny_args, no_temp_files, tmp_path, monkeypatch
):
    real = run_module.build_criterion  # what Run (lcnet_fast/engine/run.py) calls

    def nan_at_second_call(cfg):
        criterion, calls = real(cfg), {"n": 0}

        def loss(logits, targets):
            calls["n"] += 1
            value = criterion(logits, targets)
            return value * float("nan") if calls["n"] == 2 else value

        return loss

    monkeypatch.setattr(run_module, "build_criterion", nan_at_second_call)
    run_dir = tmp_path / "run"
    with pytest.raises(
        NonFiniteLossError, match=r"training loss is nan at step 2 \(epoch 1, batch 2\)"
    ):
        main(tiny_args(run_dir))
    last = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    assert last.meta["step"] == 1 and all(
        torch.isfinite(t).all() for t in last.tensors("model").values()
    )
    assert no_temp_files(run_dir)


def test_empty_split_is_a_clear_error(tiny_args, tmp_path):
    with pytest.raises(EmptySplitError, match="synthetic split 'val' is empty"):
        main(tiny_args(tmp_path / "run", "--synthetic-num-val", "0"))


def test_bad_image_names_the_file_and_skip_option_passes_through(tiny_args, tmp_path):
    from lcnet_fast.config import resolve_config
    from lcnet_fast.data import ImageLoadError, SyntheticScenes, write_dataset
    from lcnet_fast.engine.data import build_splits

    root = tmp_path / "csvdata"
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        write_dataset(SyntheticScenes(n, 32, 4, seed=0, split=split), str(root), "csv")
    broken = root / "images" / "train_000005.png"
    broken.write_bytes(b"this is not a png")
    data = [
        "--dataset",
        "csv",
        "--data-root",
        str(root),
        "--csv-val",
        "val.csv",
        "--csv-image-dir",
        "images",
    ]
    with pytest.raises(ImageLoadError, match="train_000005.png"):
        main(tiny_args(tmp_path / "run", *data))
    args, overrides = train_module.parse_args(
        [*tiny_args(tmp_path / "x", *data), "--skip-bad-images"]
    )
    cfg = resolve_config(overrides=overrides)
    splits = build_splits(cfg.data, cfg.model, cfg.train.seed)
    assert (
        splits.train.skip_bad_images and splits.val.skip_bad_images and splits.test.skip_bad_images
    )


def test_accumulation_clipping_and_raw_weights(tiny_args, tmp_path):
    """accumulation_steps 2 over 3 batches per epoch -> 2 optimizer steps per epoch;
    report_ema false -> best holds the raw weights and the metrics say so."""
    run_dir = tmp_path / "run"
    extra = ("--accumulation-steps", "2", "--grad-clip", "1.0", "--report-ema", "false")
    assert main(tiny_args(run_dir, *extra)) == 0
    assert load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors")).meta["step"] == 4
    best = load_checkpoint(str(run_dir / "checkpoints" / "best.safetensors"))
    assert best.meta["weights"] == "model" and best.meta["holds_ema"] is False
    assert all(key.startswith("model.") for key in best.keys)
    assert json.loads((run_dir / "metrics.json").read_text())["weights"] == "model"
