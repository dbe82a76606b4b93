"""User-caused faults end with one `error: ...` line on stderr and exit code 2 (issue 11): bad CSV
files, a checkpoint of other classes, an output directory that cannot be created, a full disk, NaN
validation scores, a forced C++ backend without the extension."""

import csv
import errno
import os

import pytest

from lcnet_fast import checkpoint as ckpt
from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.engine import run as run_module
from lcnet_fast.engine.cli import run_cli
from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.train import main as train_main


def _cli(main, argv, capsys):
    """(exit code, stderr lines) of main(argv) run through the console entry's error handling."""
    code = run_cli(lambda: main(argv))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def _one_error(code, err, *needles):
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory):
    """The tiny synthetic scenes as CSV files: train/val/test.csv (one-hot) + images/."""
    from lcnet_fast.data import SyntheticScenes, write_dataset

    root = tmp_path_factory.mktemp("csvdata")
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        write_dataset(SyntheticScenes(n, 32, 4, seed=0, split=split), str(root), "csv")
    return root


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _write(path, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _csv_args(tiny_args, out, root, test="test.csv", train="train.csv"):
    return tiny_args(
        out,
        *("--dataset", "csv", "--data-root", str(root), "--csv-image-dir", "images"),
        *("--csv-train", train, "--csv-val", "val.csv", "--csv-test", test),
    )


def test_csv_test_columns_differ_from_train(csv_root, tiny_args, tmp_path, capsys):
    rows = _read(csv_root / "test.csv")
    rows[0][1] = "not_a_class"
    _write(tmp_path / "test_renamed.csv", rows)
    argv = _csv_args(tiny_args, tmp_path / "run", csv_root, test=str(tmp_path / "test_renamed.csv"))
    code, err = _cli(train_main, argv, capsys)
    _one_error(code, err, "test_renamed.csv", "unexpected columns ['not_a_class']")
    assert not (tmp_path / "run").exists()


def test_unknown_class_in_label_list_csv(csv_root, tiny_args, tmp_path, capsys):
    def as_list(source, target, extra=None):
        rows = _read(source)
        header, out = rows[0], [["image", "labels"]]
        for row in rows[1:]:
            names = [header[j] for j in range(1, len(header)) if row[j] == "1"]
            out.append([row[0], ";".join(names)])
        if extra:
            out[2][1] += f";{extra}"
        _write(target, out)

    as_list(csv_root / "train.csv", tmp_path / "train_list.csv")
    as_list(csv_root / "test.csv", tmp_path / "test_list.csv", extra="unicorn")
    argv = _csv_args(
        tiny_args,
        tmp_path / "run",
        csv_root,
        test=str(tmp_path / "test_list.csv"),
        train=str(tmp_path / "train_list.csv"),
    )
    code, err = _cli(train_main, argv, capsys)
    _one_error(code, err, "test_list.csv line 3", "unknown class name 'unicorn'")


def test_header_only_csv(csv_root, tiny_args, tmp_path, capsys):
    _write(tmp_path / "empty.csv", _read(csv_root / "test.csv")[:1])
    argv = _csv_args(tiny_args, tmp_path / "run", csv_root, test=str(tmp_path / "empty.csv"))
    code, err = _cli(train_main, argv, capsys)
    _one_error(code, err, "empty.csv contains no images (only a header)")


def test_checkpoint_classes_differ_from_csv_classes(tiny_run, csv_root, tmp_path, capsys):
    rows = _read(csv_root / "test.csv")
    rows[0][2] = "zebra"
    _write(tmp_path / "other.csv", rows)
    argv = ["--checkpoint", str(tiny_run), "--dataset", "csv", "--data-root", str(csv_root)]
    argv += ["--csv-image-dir", "images", "--csv-test", str(tmp_path / "other.csv")]
    code, err = _cli(evaluate_main, [*argv, "--device", "cpu"], capsys)
    _one_error(code, err, "other.csv", "zebra")


def test_output_directory_cannot_be_created(tiny_args, tiny_run, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, err = _cli(train_main, tiny_args(blocker / "run"), capsys)
    _one_error(code, err, "cannot create run directory", "a_file is not a directory")
    out = blocker / "result.json"
    code, err = _cli(evaluate_main, ["--checkpoint", str(tiny_run), "--output", str(out)], capsys)
    _one_error(code, err, "result.json", "a_file is not a directory")


def test_disk_full_while_saving_keeps_the_last_good_checkpoint(
    tiny_args, no_temp_files, tmp_path, monkeypatch, capsys
):
    """ENOSPC on the third write of last.safetensors (step 3): one line, step 2's file intact."""
    real_open, saves = open, {"n": 0}

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if ".tmp" in str(path) and "last.safetensors" in str(path):
            saves["n"] += 1
            if saves["n"] == 3:
                return FullDisk(handle)
        return handle

    monkeypatch.setattr(ckpt, "open", fake_open, raising=False)
    run_dir = tmp_path / "run"
    code, err = _cli(train_main, tiny_args(run_dir), capsys)
    _one_error(code, err, "last.safetensors", "No space left on device", "last saved checkpoint")
    monkeypatch.undo()
    last = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    assert last.meta["step"] == 2 and last.tensors("model")
    assert no_temp_files(run_dir)


def test_non_finite_validation_scores(tiny_args, tmp_path, monkeypatch, capsys):
    real = run_module.score_split  # what Run (lcnet_fast/engine/run.py) calls

    def nan_scores(*args, **kwargs):
        indices, scores, *rest = real(*args, **kwargs)
        scores[0, 0] = float("nan")
        return indices, scores, *rest

    monkeypatch.setattr(run_module, "score_split", nan_scores)
    run_dir = tmp_path / "run"
    code, err = _cli(train_main, tiny_args(run_dir), capsys)
    _one_error(code, err, "validation scores after epoch 1 are NaN/inf for 1 of 8 images")
    last = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    assert last.meta["step"] == 2  # the last mid-epoch checkpoint; epoch 1 was not saved
    assert not (run_dir / "checkpoints" / "best.safetensors").exists()


def test_multi_line_messages_become_one_line(capsys):
    from lcnet_fast.checkpoint import CheckpointMismatchError

    def fail():
        raise CheckpointMismatchError("run/last.safetensors does not fit:\n  d_model: 1\n  x: 2")

    assert run_cli(fail) == 2
    assert capsys.readouterr().err == "error: run/last.safetensors does not fit: d_model: 1; x: 2\n"


def test_forced_cpp_backend_without_extension(tiny_args, tmp_path, monkeypatch, capsys):
    from lcnet_fast.ops import _backend

    monkeypatch.setenv("LCNET_FAST_BACKEND", "cpp")
    monkeypatch.setattr(
        _backend, "load_extension", lambda: (None, "lcnet_fast._C not built (test)")
    )
    code, err = _cli(train_main, tiny_args(tmp_path / "run"), capsys)
    _one_error(code, err, "LCNET_FAST_BACKEND=cpp", "lcnet_fast._C not built (test)")
    assert not (tmp_path / "run").exists()
