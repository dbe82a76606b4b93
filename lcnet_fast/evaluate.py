"""Evaluate a checkpoint: ``python -m lcnet_fast.evaluate --checkpoint RUN_DIR_OR_FILE``.

Prints the paper's table row (mAP, CP, CR, CF1, OP, OR, OF1 and their top-3 versions) and
per-class AP, and writes them as JSON with ``--output``. The dataset is the one recorded in the
checkpoint's run config unless ``--dataset`` / ``--data-root`` / ``--data.<key> VALUE`` say
otherwise; preprocessing (crop level, view size, mean/std) always comes from the checkpoint. The
dataset's classes must be the checkpoint's classes, in the same order.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from lcnet_fast.checkpoint import CheckpointError, compare_classes, load_checkpoint
from lcnet_fast.config import (
    ConfigError,
    ConfigHelpAction,
    DataConfig,
    ModelConfig,
    apply_overrides,
    canonical_key,
    config_from_dict,
    parse_override_tokens,
)
from lcnet_fast.data.base import ImageLoadError
from lcnet_fast.device import DeviceViews, pick_device, resolve_precision
from lcnet_fast.engine.cli import add_threads_argument, apply_threads
from lcnet_fast.engine.data import build_split, make_loader
from lcnet_fast.engine.loop import check_finite_scores, score_split
from lcnet_fast.engine.progress import CountProgress
from lcnet_fast.engine.report import (
    collapse_warning,
    compute_metrics,
    format_table,
    summary,
    write_json,
)
from lcnet_fast.engine.rundir import check_writable_file, writing
from lcnet_fast.engine.sampler import ShardSampler
from lcnet_fast.errors import EmptySplitError
from lcnet_fast.model_config import model_from_checkpoint


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_fast.evaluate",
        description=__doc__.split("\n\n")[0],
        add_help=False,
    )
    parser.add_argument(
        "-h",
        "--help",
        action=ConfigHelpAction,
        sections=("data",),
        note="Each overrides the run's own setting as --data.<key> VALUE; the defaults shown "
        "are the trainer's, evaluate starts from the run's.",
        help="show this help, with every data.* key, and exit",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="run directory (uses its best, else last) or .safetensors file",
    )
    parser.add_argument(
        "--dataset",
        help="synthetic | coco | voc | csv (default: the one the checkpoint was trained on)",
    )
    parser.add_argument("--data-root", dest="data_root", help="dataset root")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--output", help="write the result as JSON here")
    parser.add_argument(
        "--weights",
        choices=("ema", "model"),
        help="weights to use (default: the run's reported ones)",
    )
    parser.add_argument(
        "--threshold", type=float, help="decision threshold (default: the run's, normally 0.5)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per batch, >= 1 (default: the run's eval batch size)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument(
        "--csv-image-dir",
        dest="csv_image_dir",
        help="csv dataset: directory the image names are relative to (= --data.csv_image_dir; "
        "default: the run's)",
    )
    add_threads_argument(parser)
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable images out of the metrics (and report how many) instead of "
        "refusing the split; the run's own data.skip_bad_images is not inherited",
    )
    args, rest = parser.parse_known_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0 (0 = automatic), got {args.threads}")
    if args.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold must be in [0, 1], got {args.threshold}")
    return args, parse_override_tokens(rest)


def data_config(checkpoint, args, overrides: dict) -> tuple[DataConfig, ModelConfig, float, int]:
    """Dataset settings: the checkpoint's recorded run config, then the command line. Also
    sets args.collapse_spread (the run's train.collapse_spread)."""
    recorded = checkpoint.meta.get("config") or {}
    cfg = config_from_dict(recorded) if recorded else config_from_dict({})
    extra = dict(overrides)
    if args.dataset:
        extra["data.dataset"] = args.dataset
    if args.data_root is not None:
        extra["data.root"] = args.data_root
    extra["data.num_workers"] = args.num_workers
    if args.csv_image_dir is not None:
        extra["data.csv_image_dir"] = args.csv_image_dir
    for key in extra:
        if not canonical_key(key).startswith("data."):
            raise ConfigError(
                f"evaluate takes only data settings as --key value (data.*), got --{key}"
            )
    # an unreadable image is an error unless asked for here: never inherited from the run
    if not any(canonical_key(key) == "data.skip_bad_images" for key in extra):
        extra["data.skip_bad_images"] = args.skip_bad_images
    cfg = apply_overrides(cfg, extra)
    # preprocessing is part of the model: always the checkpoint's
    pre = checkpoint.meta["preprocess"]
    model_cfg = ModelConfig(crop_level=pre["crop_level"], image_size=pre["image_size"])
    cfg.data.mean, cfg.data.std = list(pre["mean"]), list(pre["std"])
    if cfg.data.dataset == "synthetic":
        cfg.data.synthetic_image_size = pre["input_size"]
    threshold = args.threshold if args.threshold is not None else cfg.train.threshold
    args.collapse_spread = cfg.train.collapse_spread
    batch = args.batch_size if args.batch_size is not None else cfg.train.eval_batch_size
    return cfg.data, model_cfg, threshold, batch


def evaluate(args, overrides: dict) -> dict:
    if args.output:  # before any work: a result that cannot be written is a wasted evaluation
        check_writable_file(args.output, "result file")
    checkpoint = load_checkpoint(args.checkpoint)
    data, model_cfg, threshold, batch_size = data_config(checkpoint, args, overrides)
    device = pick_device(args.device)
    dataset = build_split(
        args.split,
        data,
        model_cfg,
        train=False,
        classes=checkpoint.classes if data.dataset != "synthetic" else None,
    )
    if len(dataset) == 0:
        raise EmptySplitError(f"{data.dataset} split {args.split!r} has no images")
    compare_classes(checkpoint.classes, list(dataset.classes), checkpoint.path)
    weights = args.weights or checkpoint.meta["weights"]
    if not checkpoint.has(weights):
        raise CheckpointError(
            f"{checkpoint.path} holds no {weights!r} weights (it has the run's reported "
            f"{checkpoint.meta['weights']!r} weights)"
        )
    model = model_from_checkpoint(checkpoint, device, weights=weights)
    sampler = ShardSampler(len(dataset))
    loader = make_loader(
        dataset,
        batch_size,
        sampler,
        args.num_workers,
        drop_last=False,
        pin_memory=device.type == "cuda",
    )
    precision = resolve_precision("auto", device)
    try:
        _, scores, targets, skipped = score_split(
            model,
            loader,
            sampler.indices,
            device,
            precision,
            DeviceViews.from_config(data, model_cfg),
            on_batch=CountProgress(f"evaluate {args.split}", len(dataset)),
        )
    except ImageLoadError as exc:
        raise ImageLoadError(
            f"{exc} (evaluate refuses a split with unreadable images; --skip-bad-images leaves "
            f"them out of the metrics)"
        ) from exc
    # rows whose own image was unreadable were scored on a stand-in: leave them out
    keep = np.asarray([not paths for paths in skipped], dtype=bool)
    bad = sorted({path for paths in skipped for path in paths})
    if bad:
        names = ", ".join(os.path.basename(p) for p in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        print(
            f"warning: skipped {len(bad)} unreadable image(s) of split {args.split!r}, left out "
            f"of the metrics: {names}{more}",
            file=sys.stderr,
        )
    scores, targets = scores[keep], targets[keep]
    check_finite_scores(
        scores, f"scores of split {args.split!r}", f"{checkpoint.path} cannot be evaluated"
    )
    metrics = compute_metrics(scores, targets, threshold)
    result = summary(
        metrics,
        checkpoint.classes,
        args.split,
        len(scores),
        threshold,
        weights,
        checkpoint.path,
        args.collapse_spread,
    )
    result["skipped_images"] = len(bad)
    return result


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    apply_threads(args.threads, args.num_workers)
    with torch.inference_mode():
        result = evaluate(args, overrides)
    print(format_table(result, per_class=True))
    if result["collapsed"]:
        print(collapse_warning(args.split, result["score_spread"], args.collapse_spread))
    if args.output:
        with writing("result file", args.output):
            write_json(args.output, result)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    from lcnet_fast.engine.cli import run_cli

    sys.exit(run_cli(main))
