"""Driver conveniences (issue 11): explicit validation files for COCO/CSV/VOC (and a held-out
fraction without --val-split ''), evaluate --csv-image-dir and progress, --threads for train and
evaluate, an ETA on the training progress line."""

import re

import pytest
import torch

from lcnet_fast.config import resolve_config
from lcnet_fast.engine.data import build_splits
from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.evaluate import parse_args as evaluate_args
from lcnet_fast.train import main as train_main
from lcnet_fast.train import parse_args as train_args


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The tiny synthetic splits written as coco, csv and voc files."""
    from lcnet_fast.data import SyntheticScenes, write_dataset

    root = tmp_path_factory.mktemp("written")
    for kind in ("coco", "csv", "voc"):
        for split, n in (("train", 24), ("val", 8), ("test", 8)):
            write_dataset(SyntheticScenes(n, 32, 4, seed=0, split=split), str(root / kind), kind)
    return root


def _splits(tiny_args, *extra):
    _, overrides = train_args([*tiny_args("unused"), *extra])
    cfg = resolve_config(overrides=overrides)
    return build_splits(cfg.data, cfg.model, cfg.train.seed)


def test_coco_validation_file_or_fraction(written, tiny_args):
    root = str(written / "coco")
    files = []
    for split in ("train", "test"):
        files += [f"--coco-{split}-images", "images"]
        files += [f"--coco-{split}-annotations", f"annotations/instances_{split}.json"]
    base = ("--dataset", "coco", "--data-root", root, *files)
    val = (
        "--coco-val-images",
        "images",
        "--coco-val-annotations",
        "annotations/instances_val.json",
    )
    splits = _splits(tiny_args, *base, *val)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 8, 8)
    assert splits.val.image_ids and splits.val.classes == splits.train.classes
    # train and test json only: a fraction of train, without --val-split ''
    splits = _splits(tiny_args, *base, "--val-fraction", "0.25")
    assert (len(splits.train), len(splits.val)) == (18, 6)
    with pytest.raises(ValueError, match="--coco-val-annotations FILE --coco-val-images DIR"):
        _splits(tiny_args, *base)


def test_csv_fraction_and_voc_list_file(written, tiny_args):
    csv_root = str(written / "csv")
    data = ("--dataset", "csv", "--data-root", csv_root, "--csv-image-dir", "images")
    splits = _splits(tiny_args, *data, "--val-fraction", "0.25")
    assert (len(splits.train), len(splits.val)) == (18, 6)
    with pytest.raises(ValueError, match="pass --csv-val FILE"):
        _splits(tiny_args, *data)
    # VOC: an explicit list file of image ids as the validation split
    voc = written / "voc"
    ids = (voc / "VOC2007" / "ImageSets" / "Main" / "val.txt").read_text().split()[:5]
    listed = voc / "my_val.txt"
    listed.write_text("\n".join(ids) + "\n")
    splits = _splits(
        tiny_args, "--dataset", "voc", "--data-root", str(voc), "--val-split", str(listed)
    )
    assert len(splits.val) == 5 and splits.val.image_ids == ids


def test_evaluate_csv_image_dir_threads_and_progress(tiny_run, written, capsys):
    args, _ = evaluate_args(["--checkpoint", "x", "--csv-image-dir", "imgs", "--threads", "1"])
    assert args.csv_image_dir == "imgs" and args.threads == 1
    before = torch.get_num_threads()
    try:
        argv = ["--checkpoint", str(tiny_run), "--device", "cpu", "--dataset", "csv"]
        argv += ["--data-root", str(written / "csv"), "--csv-image-dir", "images"]
        assert evaluate_main([*argv, "--threads", "1", "--batch-size", "4"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err
    assert "evaluate test: 4/8 images" in err and "evaluate test: 8/8 images" in err
    with pytest.raises(SystemExit):
        evaluate_args(["--checkpoint", "x", "--threads", "-1"])


def test_train_threads_and_eta(tiny_args, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert train_main(tiny_args(tmp_path / "run", "--epochs", "1", "--threads", "1")) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    lines = [line for line in capsys.readouterr().out.splitlines() if "step 2/3" in line]
    assert len(lines) == 1 and re.search(r"eta \d+:\d\d \(run \d+:\d\d \+ evaluation\)", lines[0])
