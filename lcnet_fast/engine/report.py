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
    collapse_spread: float = 0.0,
) -> dict:
    """JSON-able result: the table values, per-class AP by class name, and what was evaluated.

    ``collapsed`` is true when the scores' spread across images (metrics.score_spread) is below
    ``collapse_spread``: the model answers (nearly) the same for every image."""

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
    out["score_spread"] = metrics["score_spread"]
    out["collapsed"] = bool(metrics["score_spread"] < collapse_spread)
    return out


def collapse_warning(split: str, spread: float, limit: float) -> str:
    """The one line printed when a split's scores barely depend on the image."""
    return (
        f"warning: COLLAPSED: {split} scores barely depend on the image (spread across images "
        f"{spread:.4f} < train.collapse_spread {limit:g}); the model gives (nearly) every image "
        f"the same answer and its mAP is a base rate, not a trained model "
        f"(README: 'Collapsed runs')"
    )


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
    if result.get("collapsed"):
        lines.append(
            f"COLLAPSED: score spread across images {result['score_spread']:.4f}: the scores do "
            "not depend on the image"
        )
    if per_class:
        width = max(len(name) for name in result["per_class_AP"])
        lines.append("per-class AP:")
        lines += [f"  {name:<{width}} {_fmt(ap)}" for name, ap in result["per_class_AP"].items()]
    return "\n".join(lines)


def write_json(path: str, data: dict) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
