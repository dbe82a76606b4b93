"""Skipped images are never silent (issue 11): with data.skip_bad_images the trainer counts them
per split across DataLoader workers (console, log.csv, metrics.json) and leaves them out of the
metrics; evaluate refuses unreadable images unless --skip-bad-images; `python -m lcnet_fast.data
check` lists every missing, unreadable or mislabelled file."""

import csv
import json

import pytest

from lcnet_fast.data.check import main as check_main
from lcnet_fast.engine.cli import run_cli
from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.train import main as train_main


@pytest.fixture
def csv_root(tmp_path):
    from lcnet_fast.data import SyntheticScenes, write_dataset

    root = tmp_path / "csvdata"
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        write_dataset(SyntheticScenes(n, 32, 4, seed=0, split=split), str(root), "csv")
    return root


def _break(root, *names):
    for name in names:
        (root / "images" / name).write_bytes(b"not an image")


DATA = ("--dataset", "csv", "--csv-image-dir", "images", "--csv-val", "val.csv")


def test_training_counts_skipped_images_across_workers(csv_root, tiny_args, tmp_path, capsys):
    _break(csv_root, "train_000003.png", "train_000004.png", "train_000017.png")
    _break(csv_root, "val_000002.png", "test_000005.png")
    run_dir = tmp_path / "run"
    argv = tiny_args(run_dir, *DATA, "--data-root", str(csv_root), "--skip-bad-images")
    assert train_main([*argv, "--num-workers", "2", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: skipped 3 unreadable train image(s)" in out
    assert "train_000004.png" in out and "skipped 1 unreadable validation image(s)" in out
    assert "test split: skipped 1 unreadable test image(s) (data.skip_bad_images)" in out
    with open(run_dir / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["skipped_train"], r["skipped_val"]) for r in rows] == [("3", "1")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["skipped_images"] == {"train": 3, "val": 1, "test": 1}
    assert metrics["num_images"] == 7  # the unreadable test image is not scored


def test_evaluate_refuses_unreadable_images_unless_told(tiny_run, csv_root, tmp_path, capsys):
    _break(csv_root, "test_000006.png")
    argv = ["--checkpoint", str(tiny_run), "--device", "cpu", *DATA, "--data-root", str(csv_root)]
    code = run_cli(lambda: evaluate_main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "test_000006.png" in err[0] and "--skip-bad-images" in err[0]
    out = tmp_path / "result.json"
    assert evaluate_main([*argv, "--skip-bad-images", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable image(s) of split 'test'" in captured.err
    result = json.loads(out.read_text())
    assert result["skipped_images"] == 1 and result["num_images"] == 7


def test_data_check_lists_every_bad_file(csv_root, tmp_path, capsys):
    _break(csv_root, "train_000001.png", "test_000002.png")
    (csv_root / "images" / "val_000003.png").unlink()
    rows = list(csv.reader(open(csv_root / "val.csv", newline="")))
    rows[4][1] = "7"  # a label value that is not 1/0/-1
    with open(csv_root / "val.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    argv = ["check", "--dataset", "csv", "--data-root", str(csv_root), "--workers", "2"]
    assert check_main([*argv, "--csv-image-dir", "images", "--csv-val", "val.csv"]) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 4, lines
    assert any(line.startswith("unreadable: ") and "train_000001.png" in line for line in lines)
    assert any(line.startswith("unreadable: ") and "test_000002.png" in line for line in lines)
    assert any(line.startswith("missing: ") and "val_000003.png" in line for line in lines)
    assert any(line.startswith("mislabelled: ") and "line 5" in line for line in lines)
    assert "train (24 images): checked 24/24 images, 1 bad" in captured.err


def test_data_check_unknown_class_in_a_label_list(tmp_path, capsys):
    from lcnet_fast.data import SyntheticScenes, write_dataset

    write_dataset(SyntheticScenes(4, 32, 4, seed=0, split="train"), str(tmp_path), "csv")
    names = [f"train_{i:06d}.png" for i in range(4)]
    with open(tmp_path / "list.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(
            [["image", "labels"], [names[0], "a;b"], [names[1], "b"], [names[2], "a"]]
        )
    with open(tmp_path / "test_list.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["image", "labels"], [names[3], "a;unicorn"]])
    argv = ["check", "--dataset", "csv", "--data-root", str(tmp_path), "--workers", "1"]
    argv += ["--csv-image-dir", "images", "--csv-train", "list.csv", "--csv-test", "test_list.csv"]
    assert check_main(argv) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "unknown class name 'unicorn'" in lines[0], lines
    assert names[3] in lines[0]
