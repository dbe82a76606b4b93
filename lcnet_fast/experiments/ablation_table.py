"""The ablation's Markdown table: rows (mean ± std over seeds), paired differences, per-class AP of
the small-object classes, and which runs came from ``--records``. Pure formatting of the result
dict that ``ablation.run_ablation`` builds; nothing here trains or reads run directories."""

from __future__ import annotations

import math

from lcnet_fast.experiments.rows import paper_text
from lcnet_fast.experiments.stats import fmt_mean_std


def _cell(stat: dict, digits: int = 1, signed: bool = False) -> str:
    values = stat["values"]
    if signed and not math.isnan(stat["mean"]):
        text = fmt_mean_std(values, digits)
        return text if text.startswith("-") else f"+{text}"
    return fmt_mean_std(values, digits)


def _recorded_note(runs: list[dict]) -> str:
    """Which runs came from --records: they were trained on another machine, and a rerun of the
    same config need not reproduce them to the last digit."""
    seeds_by_row: dict[str, list[int]] = {}
    for run in runs:
        if run.get("status") == "recorded":
            seeds_by_row.setdefault(run["row"], []).append(run["seed"])
    if not seeds_by_row:
        return ""
    count = sum(len(seeds) for seeds in seeds_by_row.values())
    which = "; ".join(
        f"`{row}` seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
        for row, seeds in seeds_by_row.items()
    )
    return (
        f" {count} of {len(runs)} runs are taken from --records (trained earlier, elsewhere): "
        f"{which}."
    )


def markdown(result: dict) -> str:
    agg = result["rows"]
    setup = result["setup"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Dataset {setup['dataset']}"
        f"{' (' + setup['synthetic_kind'] + ')' if setup.get('synthetic_kind') else ''} "
        f"({setup['train_images']} train / {setup['test_images']} test "
        f"images, {setup['num_classes']} classes), backbone {setup['backbone']} "
        f"(pretrained={setup['pretrained']}), view size M = {setup['view_size']} px (input k*M), "
        f"d_model {setup['d_model']}, {setup['epochs']} epochs, batch {setup['batch_size']}, "
        f"lr {setup['lr']}, seeds {setup['seeds']}. Test split, {setup['weights']} weights; "
        "mean ± sample std over seeds; Δ mAP is paired by seed against "
        f"`{result['baseline']}`.{_recorded_note(result.get('runs', []))}",
        "",
        "| row | LLCD | eq. (1) | crop (input px) | graph | mirror | seeds | mAP | Δ mAP | CF1 "
        "| OF1 | CF1 top-3 | tiny AP | paper mAP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in agg:
        model = entry["model"]
        delta = (
            "(base)"
            if entry["row"] == result["baseline"]
            else _cell(entry["delta_mAP"], signed=True)
        )
        if model.get("arch") == "pooled":
            depth, reading, graph, mirror = "pooled head", "-", "no", "no"
        else:
            depth = model["num_layers"]
            reading = model.get("llcd_reading", setup.get("llcd_reading", "literal"))
            graph = "yes" if model["use_graph"] else "no"
            mirror = "yes" if model["mirror_inputs"] else "no"
        lines.append(
            f"| `{entry['row']}` | {depth} | {reading} | {model['crop_level']} "
            f"({entry['input_size']}) | {graph} | {mirror} | {len(entry['seeds'])} | "
            f"{_cell(entry['mAP'])} | "
            f"{delta} | {_cell(entry['CF1'])} | "
            f"{_cell(entry['OF1'])} | {_cell(entry['CF1_top3'])} | "
            f"{_cell(entry['tiny_AP']['mean'])} | {paper_text(entry['row'])} |"
        )
    if result.get("pairs"):
        lines += [
            "",
            "Paired differences (per seed, then mean ± std over seeds):",
            "",
            "| A - B | seeds | Δ mAP | Δ tiny AP |",
            "|---|---|---|---|",
        ]
        for pair in result["pairs"]:
            lines.append(
                f"| `{pair['a']}` - `{pair['b']}` | {len(pair['seeds'])} | "
                f"{_cell(pair['mAP'], signed=True)} | {_cell(pair['tiny_AP'], signed=True)} |"
            )
    collapsed = [f"`{e['row']}` ({e['collapsed_runs']})" for e in agg if e.get("collapsed_runs")]
    if collapsed:
        note = "Collapsed runs (test scores independent of the image): "
        lines += ["", note + ", ".join(collapsed)]
    tiny_names = [n for n in agg[0]["tiny_AP"] if n != "mean"] if agg else []
    if tiny_names:
        lines += [
            "",
            "Per-class AP of the small-object classes:",
            "",
            "| row | " + " | ".join(f"`{n}`" for n in tiny_names) + " |",
            "|---|" + "---|" * len(tiny_names),
        ]
        for entry in agg:
            cells = [_cell(entry["tiny_AP"][n]) for n in tiny_names]
            lines.append(f"| `{entry['row']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
