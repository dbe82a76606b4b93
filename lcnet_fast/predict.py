"""Predict labels: ``python -m lcnet_fast.predict --checkpoint RUN_DIR_OR_FILE IMAGE_OR_DIR ...``.

For each image, the labels whose probability reaches ``--threshold`` (default 0.5), most probable
first; ``--top-k K`` also lists the K most probable labels whatever their probability. Images are
preprocessed exactly as the checkpoint records (crop level, view size, mean/std). A directory
means every image file directly inside it, in name order. ``--format json`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from lcnet_fast.inference import Predictor


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
        help="replay the forward from a CUDA graph (auto: on a GPU)",
    )
    args = parser.parse_args(argv)
    if args.top_k < 0:
        parser.error("--top-k must be >= 0")
    return args


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


def predict(
    checkpoint_path: str,
    inputs: list[str],
    threshold: float = 0.5,
    top_k: int = 0,
    batch_size: int = 16,
    device: str = "auto",
    weights: str | None = None,
    cuda_graph: str = "auto",
) -> list[dict]:
    """[{image, labels: [{label, probability}], top_k: [...]}] for every image
    (lcnet_fast.inference.Predictor does the work)."""
    predictor = Predictor.from_pretrained(
        checkpoint_path,
        device,
        weights,
        batch_size=batch_size,
        cuda_graph={"on": True, "off": False}.get(cuda_graph, cuda_graph),
    )
    files = image_files(inputs)
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        for path, probs in zip(chunk, predictor.probabilities(chunk), strict=True):
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
    args = parse_args(argv)
    results = predict(
        args.checkpoint,
        args.inputs,
        args.threshold,
        args.top_k,
        args.batch_size,
        args.device,
        args.weights,
        args.cuda_graph,
    )
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results, args.threshold))
    return 0


if __name__ == "__main__":
    from lcnet_fast.engine.cli import run_cli

    sys.exit(run_cli(main))
