"""The paper's metric table (mAP, CP, CR, CF1, OP, OR, OF1 and their top-3 versions) and the JSON
summary that train (metrics.json) and evaluate (--output) write."""

from __future__ import annotations

import json
import math

from lcnet_fast.checkpoint import write_bytes_atomic

TABLE_KEYS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
TOP_KEYS = ("CP", "CR", "CF1", "OP", "OR", "OF1")


def compute_metrics(scores, targets, threshold: float):
    from lcnet_fast.metrics import multilabel_metrics

    return multilabel_metrics(scores, targets, threshold=threshold, top_k=3)


def summary(
    metrics: dict,
    classes: list[str],
    split: str,
    num_images: int,
    threshold: float,
    weights: str,
    source: str,
) -> dict:
    """JSON-able result: the table values, per-class AP by class name, and what was evaluated."""

    def clean(value):
        return None if isinstance(value, float) and math.isnan(value) else value

    out = {
        "split": split,
        "num_images": num_images,
        "threshold": threshold,
        "weights": weights,
        "source": source,
    }
    out.update({key: clean(metrics[key]) for key in TABLE_KEYS})
    out.update({f"{key}_top3": clean(metrics[f"{key}_top3"]) for key in TOP_KEYS})
    out["AP_std"] = clean(metrics.get("AP_std", float("nan")))
    out["per_class_AP"] = {name: clean(ap) for name, ap in zip(classes, metrics["AP"], strict=True)}
    out["classes_without_positive"] = [
        classes[i] for i in metrics.get("classes_without_positive", [])
    ]
    return out


def _fmt(value) -> str:
    return "  n/a" if value is None else f"{value:5.1f}"


def format_table(result: dict, per_class: bool = False) -> str:
    """A fixed-width table like the paper's: one row for all labels, one for top-3."""
    header = "        " + " ".join(f"{key:>5}" for key in TABLE_KEYS)
    row_all = "all     " + " ".join(_fmt(result[key]) for key in TABLE_KEYS)
    row_top = "top-3   " + f"{'':>5} " + " ".join(_fmt(result[f"{key}_top3"]) for key in TOP_KEYS)
    lines = [
        f"{result['split']} split: {result['num_images']} images, threshold {result['threshold']}, "
        f"{result['weights']} weights",
        header,
        row_all,
        row_top,
    ]
    if per_class:
        width = max(len(name) for name in result["per_class_AP"])
        lines.append("per-class AP:")
        lines += [f"  {name:<{width}} {_fmt(ap)}" for name, ap in result["per_class_AP"].items()]
    return "\n".join(lines)


def write_json(path: str, data: dict) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
