"""PNG plots of the experiments (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections import defaultdict


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str, title: str) -> None:
    """Titles the figure (the run's setup, small), writes it to path as PNG and closes it."""
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _variant(model: dict) -> str:
    if model.get("arch") == "pooled":
        return "pooled baseline"
    reading = f"{model['llcd_reading']}, " if "llcd_reading" in model else ""
    if model["mirror_inputs"]:
        return reading + "mirrored inputs" + ("" if model["use_graph"] else ", no graph")
    return reading + ("with graph" if model["use_graph"] else "no graph")


def _series(entries: list[dict], x_key: str, fixed: tuple[str, ...]):
    """{label: [(x, entry), ...]} for entries that differ only in x_key (>= 2 points)."""
    groups = defaultdict(list)
    for entry in entries:
        model = entry["model"]
        # the pooled baseline has no decoder: depth 0, no graph, no reading
        key = tuple(model.get(k, 0) for k in fixed) + (
            model.get("arch", "lcnet"),
            model.get("llcd_reading", ""),
            model.get("use_graph", False),
            model.get("mirror_inputs", False),
        )
        groups[key].append((model.get(x_key, 0), entry))
    return {
        key: sorted(points, key=lambda p: p[0])
        for key, points in groups.items()
        if len(points) >= 2
    }


def _errorbar(ax, points, stat, label, style="-o"):
    xs = [x for x, _ in points]
    means = [stat(e)["mean"] for _, e in points]
    stds = [0.0 if math.isnan(stat(e)["std"]) else stat(e)["std"] for _, e in points]
    ax.errorbar(xs, means, yerr=stds, fmt=style, capsize=3, label=label)


def plot_ablation(result: dict, path: str) -> None:
    """Left: test mAP over decoder depth (one line per crop level / graph / mirror variant).
    Right: test mAP and mean tiny-class AP over crop level. A plain bar chart when neither has
    two points."""
    plt = _pyplot()
    entries = result["rows"]
    by_depth = _series(entries, "num_layers", ("crop_level",))
    by_crop = _series(entries, "crop_level", ("num_layers",))
    panels = [p for p in (by_depth, by_crop) if p]
    if not panels:
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(entries)), 3.5))
        names = [e["row"] for e in entries]
        means = [e["mAP"]["mean"] for e in entries]
        stds = [0.0 if math.isnan(e["mAP"]["std"]) else e["mAP"]["std"] for e in entries]
        ax.bar(names, means, yerr=stds, capsize=3)
        ax.set_ylabel("test mAP (%)")
        ax.tick_params(axis="x", rotation=30)
    else:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
        axes = axes[0]
        index = 0
        if by_depth:
            ax = axes[index]
            index += 1
            for (crop, *_), points in sorted(by_depth.items()):
                label = f"crop {crop}, " + _variant(points[0][1]["model"])
                _errorbar(ax, points, lambda e: e["mAP"], label)
            ax.set_xlabel("LLCD layers")
            ax.set_ylabel("test mAP (%)")
            ax.set_title("Decoder depth (Tables 4-6)")
            ax.legend(fontsize=8)
        if by_crop:
            ax = axes[index]
            for (depth, *_), points in sorted(by_crop.items()):
                model = points[0][1]["model"]
                label = _variant(model)
                if model.get("arch") != "pooled":
                    label = f"{depth} LLCD, {label}"
                _errorbar(ax, points, lambda e: e["mAP"], f"mAP, {label}")
                if not math.isnan(points[0][1]["tiny_AP"]["mean"]["mean"]):
                    _errorbar(
                        ax, points, lambda e: e["tiny_AP"]["mean"], f"tiny-class AP, {label}", "--s"
                    )
            ax.set_xlabel("Crop-Forwarding level k (input k*M px)")
            ax.set_ylabel("test AP (%)")
            ax.set_title("Crop-Forwarding (Table 7)")
            ax.set_xticks(sorted({p[0] for pts in by_crop.values() for p in pts}))
            ax.legend(fontsize=8)
    heading = "{dataset}, {backbone}, {epochs} epochs, seeds {seeds} (mean ± std)"
    _save(plt, fig, path, heading.format(**result["setup"]))


def plot_cost(result: dict, path: str) -> None:
    """Train step and single-image inference time (median) over configurations, both models."""
    plt = _pyplot()
    rows = result["rows"]
    labels = [f"L{r['num_layers']}/CF{r['crop_level']}" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, key, title, scale in (
        (axes[0], "train_s", "training time per batch (s)", 1.0),
        (axes[1], "infer_s", "single-image inference (ms)", 1e3),
        (axes[2], "peak_mb", "peak memory, train step (MB)", 1.0),
    ):
        for model in result["models"]:
            values = [
                r[model][key] * scale if r[model].get(key) is not None else math.nan for r in rows
            ]
            ax.plot(labels, values, "-o", label=model)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.legend(fontsize=8)
    heading = (
        "{device}, {backbone} {image_size} px views, batch {batch_size}, {precision}, "
        "median of {rounds} interleaved rounds"
    )
    _save(plt, fig, path, heading.format(**result["setup"]))
