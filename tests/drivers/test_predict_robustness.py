"""predict keeps going past unreadable images (each named on stderr, exit code 2 at the end),
refuses out-of-range options with one argparse error, and turns a corrupted checkpoint into one
clear line."""

import json
import math
import re
import shutil

import pytest

from lcnet_fast.data import ImageLoadError
from lcnet_fast.engine.cli import run_cli
from lcnet_fast.predict import main as predict_main
from lcnet_fast.predict import predict


@pytest.fixture(scope="module")
def good_images(tmp_path_factory):
    """Three readable 32-px PNGs in a directory of their own."""
    from lcnet_fast.data import SyntheticScenes, write_dataset

    root = tmp_path_factory.mktemp("images")
    write_dataset(SyntheticScenes(3, 32, 4, seed=0, split="test"), str(root / "d"), "csv")
    return root / "d" / "images"


def _run_json(capsys, *argv):
    code = predict_main(["--format", "json", "--device", "cpu", "--threshold", "0.0", *argv])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_bad_images_are_reported_and_the_rest_still_predicted(
    tiny_run, good_images, tmp_path, capsys
):
    mixed = tmp_path / "mixed"
    shutil.copytree(good_images, mixed)
    (mixed / "a_garbage.png").write_bytes(b"\x00\x01 this is not an image")
    whole = (good_images / "test_000001.png").read_bytes()
    (mixed / "b_truncated.png").write_bytes(whole[: len(whole) // 2])
    missing = tmp_path / "nothere.jpg"

    # batch size 2: the first batch holds only the two bad files, so a whole batch is skipped
    code, results, err = _run_json(
        capsys, "--checkpoint", str(tiny_run), "--batch-size", "2", str(mixed), str(missing)
    )
    assert code == 2
    good = sorted(str(p) for p in mixed.glob("test_*.png"))
    assert [entry["image"] for entry in results] == good  # every readable image, in order
    lines = err.strip().splitlines()
    assert len(lines) == 3, err  # one line per failed file, nothing else
    assert lines[0].startswith(f"error: {mixed / 'a_garbage.png'}: cannot read image")
    truncated = str(mixed / "b_truncated.png")
    assert lines[1].startswith(f"error: {truncated}: cannot read image: ")
    assert lines[1].count(truncated) == 1  # the reason does not repeat the path
    assert lines[2] == f"error: {missing}: file not found"

    # the readable images get exactly the predictions they get in a run without bad files
    code, clean, err = _run_json(capsys, "--checkpoint", str(tiny_run), str(good_images))
    assert code == 0 and err == ""
    assert len(clean) == len(results) == 3
    for got, want in zip(results, clean, strict=True):
        assert [item["label"] for item in got["labels"]] == [
            item["label"] for item in want["labels"]
        ]
        for a, b in zip(got["labels"], want["labels"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_every_image_bad_prints_nothing_and_fails(tiny_run, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"nope")
    (tmp_path / "y.jpg").write_bytes(b"")
    code, results, err = _run_json(capsys, "--checkpoint", str(tiny_run), str(tmp_path))
    assert code == 2 and results == []
    assert [line.split(": ")[1] for line in err.strip().splitlines()] == [
        str(tmp_path / "x.png"),
        str(tmp_path / "y.jpg"),
    ]


def test_single_named_bad_image_is_one_clear_error(tiny_run, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    argv = ["--checkpoint", str(tiny_run), str(corrupt), "--device", "cpu"]
    with pytest.raises(ImageLoadError, match="corrupt.png"):
        predict_main(argv)
    # as `python -m lcnet_fast.predict` runs it: one line naming the file, exit code 2
    assert run_cli(lambda: predict_main(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(corrupt) in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
        ("--batch-size", "-3", "--batch-size must be >= 1, got -3"),
        ("--top-k", "-1", "--top-k must be >= 0, got -1"),
        ("--threshold", "1.5", r"--threshold must be within \[0, 1\], got 1.5"),
        ("--threshold", "-0.1", r"--threshold must be within \[0, 1\], got -0.1"),
        ("--threshold", "nan", r"--threshold must be within \[0, 1\], got nan"),
    ],
)
def test_out_of_range_options_are_one_argparse_error(option, value, message, tmp_path, capsys):
    argv = ["--checkpoint", str(tmp_path / "none"), "x.png", f"{option}={value}"]
    with pytest.raises(SystemExit) as caught:
        predict_main(argv)
    assert caught.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith("python -m lcnet_fast.predict: error: ")
    assert re.fullmatch(message, errors[0].split("error: ", 1)[1])


def test_boundary_values_are_accepted(tiny_run, good_images, capsys):
    image = str(good_images / "test_000000.png")
    for argv in (["--threshold", "1.0"], ["--threshold", "0"], ["--top-k", "0"]):
        code = predict_main(
            ["--checkpoint", str(tiny_run), image, "--device", "cpu", "--batch-size", "1", *argv]
        )
        assert code == 0
    assert image in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"top_k": -2}, "top_k must be >= 0"),
        ({"threshold": math.inf}, r"threshold must be within \[0, 1\]"),
    ],
)
def test_predict_function_checks_ranges_before_loading(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        predict(str(tmp_path / "no_checkpoint_needed"), ["x.png"], **kwargs)


def test_corrupted_checkpoint_is_one_line(tiny_run, good_images, tmp_path, capsys):
    from lcnet_fast.checkpoint import load_checkpoint

    source = load_checkpoint(str(tiny_run))
    broken = tmp_path / "broken.safetensors"
    shutil.copyfile(source.path, broken)
    data = bytearray(broken.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    name = next(k for k in sorted(header) if k.startswith(f"{source.meta['weights']}."))
    data[8 + header_len + header[name]["data_offsets"][0]] ^= 1
    broken.write_bytes(bytes(data))
    argv = ["--checkpoint", str(broken), str(good_images), "--device", "cpu"]
    assert run_cli(lambda: predict_main(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {broken}: tensor data does not match its checksum (corrupted file): "
        f"tensor {name!r}\n"
    )
