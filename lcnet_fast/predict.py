"""Predict labels: ``python -m lcnet_fast.predict --checkpoint RUN_DIR_OR_FILE IMAGE_OR_DIR ...``.

For each image, the labels whose probability reaches ``--threshold`` (default 0.5), most probable
first; ``--top-k K`` also lists the K most probable labels whatever their probability. Images are
preprocessed exactly as the checkpoint records (crop level, view size, mean/std). A directory
means every image file directly inside it, in name order. ``--format json`` prints JSON.

With several images, one that is missing, unreadable or corrupt does not stop the run: it is
reported as ``error: <path>: <reason>`` on stderr, every readable image is still predicted and
printed, and the command exits with code 2 at the end. A single image that cannot be read is an
error on its own (``error: <message naming it>``, exit code 2).

``--compile`` runs the forward through torch.compile (see lcnet_fast.inference.Predictor): the
same probabilities to float32 rounding; it pays off over many batches, since the first batch of
each size (``--batch-size`` and the last, smaller one) waits for a compilation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from lcnet_fast.inference import Predictor

EXIT_SOME_FAILED = 2  # the exit code when any image could not be read (as for a user error)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_fast.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="run directory (uses its best, else last) or .safetensors file",
    )
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument(
        "--top-k", dest="top_k", type=int, default=0, help="also list the K most probable labels"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--weights", choices=("ema", "model"), help="default: the run's reported weights"
    )
    parser.add_argument(
        "--cuda-graph",
        choices=("auto", "on", "off"),
        default="auto",
        help="replay the forward from a CUDA graph (auto: on a GPU, unless --compile)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the forward: same probabilities, faster per batch, but each batch "
        "size compiles once first (tens of seconds on a small CPU): for many images",
    )
    args = parser.parse_args(argv)
    problem = range_problem(args.threshold, args.top_k, args.batch_size)
    if args.compile and args.cuda_graph == "on":
        problem = "--compile and --cuda-graph on: choose one"
    if problem:
        parser.error(problem)  # one line + usage on stderr, exit code 2
    return args


def range_problem(threshold: float, top_k: int, batch_size: int, cli: bool = True) -> str | None:
    """What is wrong with the numeric settings (named as the command-line options when `cli`,
    else as predict()'s arguments); None when they are in range."""
    names = (
        ("--threshold", "--top-k", "--batch-size") if cli else ("threshold", "top_k", "batch_size")
    )
    if not 0.0 <= threshold <= 1.0:  # also false for NaN
        return f"{names[0]} must be within [0, 1], got {threshold}"
    if top_k < 0:
        return f"{names[1]} must be >= 0, got {top_k}"
    if batch_size < 1:
        return f"{names[2]} must be >= 1, got {batch_size}"
    return None


def image_files(inputs: list[str]) -> list[str]:
    from lcnet_fast.data.folder import IMAGE_EXTENSIONS

    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, name)
                for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(item, name))
            )
            if not found:
                raise FileNotFoundError(f"no image files in directory {item}")
            files += found
        else:
            files.append(item)  # a missing/unreadable file fails in load_image with its name
    return files


def failure_reason(path: str, exc: Exception) -> str:
    """Why an image could not be read, without repeating its path (the report line names it)."""
    if not os.path.exists(path):
        return "file not found"
    return f"cannot read image: {exc.__cause__}" if exc.__cause__ else str(exc)


def predict(
    checkpoint_path: str,
    inputs: list[str],
    threshold: float = 0.5,
    top_k: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    weights: str | None = None,
    cuda_graph: str = "auto",
    on_error: Callable[[str, str], None] | None = None,
    compile: bool = False,
) -> list[dict]:
    """[{image, labels: [{label, probability}], top_k: [...]}] for every readable image
    (lcnet_fast.inference.Predictor does the work).

    An image that cannot be read raises ImageLoadError naming it, unless `on_error` is given:
    then ``on_error(path, reason)`` is called, the image is left out of the results and the
    others are still predicted."""
    from lcnet_fast.data import ImageLoadError, load_image

    problem = range_problem(threshold, top_k, batch_size, cli=False)
    if problem:
        raise ValueError(problem)
    predictor = Predictor.from_pretrained(
        checkpoint_path,
        device,
        weights,
        batch_size=batch_size,
        cuda_graph={"on": True, "off": False}.get(cuda_graph, cuda_graph),
        compile=compile,
    )
    files = image_files(inputs)
    results = []
    for start in range(0, len(files), batch_size):
        chunk, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(load_image(path))
            except ImageLoadError as exc:
                if on_error is None:
                    raise
                on_error(path, failure_reason(path, exc))
                continue
            chunk.append(path)
        if not images:
            continue
        for path, probs in zip(chunk, predictor.probabilities(images), strict=True):
            entry = {
                "image": path,
                "labels": [
                    {"label": label, "probability": p}
                    for label, p in predictor.ranked(probs, threshold)
                ],
            }
            if top_k:
                entry["top_k"] = [
                    {"label": label, "probability": p}
                    for label, p in predictor.ranked(probs, top_k=top_k)
                ]
            results.append(entry)
    return results


def format_table(results: list[dict], threshold: float) -> str:
    lines = []
    for entry in results:
        found = ", ".join(f"{item['label']} {item['probability']:.3f}" for item in entry["labels"])
        lines.append(f"{entry['image']}: {found or f'(no label >= {threshold})'}")
        if "top_k" in entry:
            ranked = ", ".join(
                f"{item['label']} {item['probability']:.3f}" for item in entry["top_k"]
            )
            lines.append(f"  top-{len(entry['top_k'])}: {ranked}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the predictions; 0 when every image was read, 2 when some could not be (each named
    on stderr). A single explicitly named image that cannot be read raises ImageLoadError (one
    line via run_cli)."""
    args = parse_args(argv)
    single_file = len(args.inputs) == 1 and not os.path.isdir(args.inputs[0])
    failed = []

    def report(path: str, reason: str) -> None:
        failed.append(path)
        print(f"error: {path}: {reason}", file=sys.stderr, flush=True)

    results = predict(
        args.checkpoint,
        args.inputs,
        args.threshold,
        args.top_k,
        args.batch_size,
        args.device,
        args.weights,
        args.cuda_graph,
        on_error=None if single_file else report,
        compile=args.compile,
    )
    if args.format == "json":
        print(json.dumps(results, indent=2))
    elif results:
        print(format_table(results, args.threshold))
    return EXIT_SOME_FAILED if failed else 0


if __name__ == "__main__":
    from lcnet_fast.engine.cli import run_cli

    sys.exit(run_cli(main))
