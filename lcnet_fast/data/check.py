"""Which reader and files make each split of a configured dataset, and the dataset check.

``open_split`` is the one place that maps the data settings (``lcnet_fast.config.DataConfig``) of
a file dataset -- coco, voc, csv, folder -- to a reader; the trainer and evaluate use it through
``lcnet_fast.engine.data.build_split``.

``python -m lcnet_fast.data check --dataset csv|coco|voc|folder --data-root DIR [--key value ...]``
takes the data flags of ``python -m lcnet_fast.train`` and, before any training, opens every image
of the configured splits in a process pool (``--workers N``), printing a progress line, then lists
every missing or unreadable image and every mislabelled entry (a class name the split may not have,
a label value other than 1/0/-1, an annotation of an unknown image or category, a missing or
unparsable annotation file), one per line. Exit code 0 when everything is readable, 2 otherwise.
Validation and test splits are checked against the training split's classes, as training reads
them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from lcnet_fast.config import ConfigError, DataConfig, apply_overrides, parse_override_tokens

from .base import DatasetError, ImageLoadError, MultiLabelDataset, decode_image

__all__ = ["check_dataset", "main", "open_split", "split_names"]

FILE_DATASETS = ("coco", "voc", "csv", "folder")


def _path(root: str, name: str) -> str:
    return name if os.path.isabs(name) or not root else os.path.join(root, name)


def open_split(
    split: str,
    data: DataConfig,
    transform=None,
    classes: list[str] | None = None,
    label_errors: list[str] | None = None,
) -> MultiLabelDataset:
    """The reader of one split of a file dataset (coco, voc, csv, folder). `label_errors`: see the
    readers (a list collects mislabelled entries instead of raising)."""
    kind = data.dataset
    if kind == "coco":
        from .coco import CocoDataset

        files = {
            "train": (data.coco_train_images, data.coco_train_annotations),
            "test": (data.coco_test_images, data.coco_test_annotations),
        }
        if data.coco_val_annotations:
            files["val"] = (data.coco_val_images, data.coco_val_annotations)
        if split not in files:
            raise ConfigError(
                f"coco split {split!r} has no annotation file: pass --coco-val-annotations FILE "
                f"--coco-val-images DIR for a validation split, --val-fraction F to hold one out "
                f"of train, or --val-split '' for none"
                if split == "val"
                else f"coco has the splits {', '.join(files)}; got {split!r}"
            )
        images, annotations = files[split]
        return CocoDataset(
            _path(data.root, images),
            _path(data.root, annotations),
            transform=transform,
            classes=classes,
            skip_bad_images=data.skip_bad_images,
            label_errors=label_errors,
        )
    if kind == "voc":
        from .voc import VOCDataset

        return VOCDataset(
            data.root,
            split,
            year=data.voc_year,
            transform=transform,
            classes=classes,
            skip_bad_images=data.skip_bad_images,
            label_errors=label_errors,
        )
    if kind == "csv":
        from .csv_dataset import CSVDataset

        files = {"train": data.csv_train, "val": data.csv_val, "test": data.csv_test}
        if not files.get(split):
            raise ConfigError(
                f"csv dataset: no file configured for split {split!r} (data.csv_{split})"
                + (
                    "; pass --csv-val FILE, --val-fraction F to hold one out of train, or "
                    "--val-split '' for none"
                    if split == "val"
                    else ""
                )
            )
        return CSVDataset(
            _path(data.root, files[split]),
            _path(data.root, data.csv_image_dir),
            transform=transform,
            classes=classes,
            skip_bad_images=data.skip_bad_images,
            label_errors=label_errors,
        )
    if kind == "folder":
        from .folder import FolderDataset

        return FolderDataset(data.root, transform=transform, skip_bad_images=data.skip_bad_images)
    raise ConfigError(f"unknown dataset {kind!r}; expected one of {', '.join(FILE_DATASETS)}")


def split_names(data: DataConfig) -> list[str]:
    """The splits training reads: train, then val and test when configured."""
    if data.dataset == "folder":
        return ["train"]
    names = [data.train_split]
    if data.val_split and not (
        (data.dataset == "coco" and data.val_split == "val" and not data.coco_val_annotations)
        or (data.dataset == "csv" and data.val_split == "val" and not data.csv_val)
    ):
        names.append(data.val_split)
    if data.test_split:
        names.append(data.test_split)
    return names


def _check_one(path: str) -> tuple[str, str] | None:
    """(kind, reason) for a bad image file, None for a readable one (runs in the pool)."""
    if not os.path.isfile(path):
        return "missing", "no such file"
    try:
        decode_image(path)  # what training's load_image does, without torch
    except ImageLoadError as exc:
        return "unreadable", str(exc.__cause__ or exc)
    return None


def _scan(paths: list[str], workers: int, label: str, stream) -> list[tuple[str, str, str]]:
    """(kind, path, reason) of every bad file, scanning in a process pool with a progress line."""
    bad: list[tuple[str, str, str]] = []
    total, done, last = len(paths), 0, time.monotonic()
    chunk = max(1, min(64, total // max(1, workers * 8)))

    def report(force: bool = False) -> None:
        nonlocal last
        now = time.monotonic()
        if force or now - last >= 2.0:
            last = now
            print(
                f"{label}: checked {done}/{total} images, {len(bad)} bad", file=stream, flush=True
            )

    if workers <= 1:
        results = map(_check_one, paths)
        pool = None
    else:
        # fork: the workers need nothing but PIL, and start at once (spawn would re-import torch)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        results = pool.map(_check_one, paths, chunksize=chunk)
    try:
        for path, result in zip(paths, results, strict=True):
            done += 1
            if result is not None:
                bad.append((result[0], path, result[1]))
            report()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    report(force=True)
    return bad


def check_dataset(data: DataConfig, workers: int = 1, stream=None) -> list[str]:
    """Every problem of the configured splits, one line each (empty: all readable)."""
    stream = stream or sys.stderr
    problems: list[str] = []
    classes = None
    for split in split_names(data):
        label_errors: list[str] = []
        try:
            dataset = open_split(split, data, classes=classes, label_errors=label_errors)
        except (DatasetError, FileNotFoundError, ConfigError) as exc:
            problems.append(f"{split}: {exc}")
            continue
        if classes is None:
            classes = list(dataset.classes)
        problems += [f"mislabelled: {message}" for message in label_errors]
        bad = _scan(list(dataset.paths), workers, f"{split} ({len(dataset)} images)", stream)
        problems += [f"{kind}: {path}: {reason}" for kind, path, reason in bad]
    return problems


def _data_config(dataset: str, overrides: dict) -> DataConfig:
    flat = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        flat[key if key.startswith("data.") else f"data.{key}"] = value
    from lcnet_fast.config import RunConfig

    cfg = apply_overrides(RunConfig(), {**flat, "data.dataset": dataset})
    return cfg.data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_fast.data check",
        description="List every missing, unreadable or mislabelled file of a dataset's splits "
        "(the data flags of python -m lcnet_fast.train; exit code 2 if there is any)",
    )
    parser.add_argument("command", choices=("check",))
    parser.add_argument("--dataset", required=True, choices=FILE_DATASETS)
    parser.add_argument("--data-root", dest="data_root", default="", help="dataset root")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(
            1,
            min(
                8,
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1),
            ),
        ),
        help="processes that open the images (default: the CPUs, at most 8)",
    )
    args, rest = parser.parse_known_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    overrides = parse_override_tokens(rest)
    overrides["root"] = args.data_root
    data = _data_config(args.dataset, overrides)
    problems = check_dataset(data, args.workers)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 2
    print("all images readable and labelled with known classes")
    return 0
