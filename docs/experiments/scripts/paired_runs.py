"""Paired differences between two ablation run directories that hold the same rows and seeds
trained with one setting changed (EXPERIMENTS.md, "Deeper stacks"): e.g. the decoder learning-rate
scale, which the ablation rows do not vary.

For each row present in both, per seed: test mAP and mean tiny-class AP of A and of B (each run's
metrics.json), and A - B; then mean +- sample std over the seeds both have.

A row given as ROW_A:ROW_B pairs A's row ROW_A with B's row ROW_B (e.g. a variant of LCNet run
under another row name against the pooled baseline, EXPERIMENTS.md "Why the decoder loses").

RUNS_B may also be a committed ablation JSON (docs/experiments/<stem>.json): its recorded runs
stand in for run directories that are gone (they are not committed).

usage: python docs/experiments/scripts/paired_runs.py RUNS_A RUNS_B [ROW | ROW_A:ROW_B ...]
"""

import json
import os
import sys

from lcnet_fast.experiments.ablation import tiny_class_ap
from lcnet_fast.experiments.stats import fmt_mean_std


def scores(run_dir: str) -> tuple[float, float] | None:
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        metrics = json.load(handle)
    tiny = tiny_class_ap(metrics["per_class_AP"])
    return metrics["mAP"], float("nan") if tiny is None else tiny


def recorded_scores(record_path: str) -> dict[str, tuple[float, float]]:
    """'<row>/seed<k>' -> (test mAP, mean tiny AP) of every run in an ablation JSON."""
    with open(record_path, encoding="utf-8") as handle:
        runs = json.load(handle)["runs"]
    return {
        f"{run['row']}/seed{run['seed']}": (run["metrics"]["mAP"], run["tiny_AP"]) for run in runs
    }


def main(a_root: str, b_root: str, rows: list[str]) -> None:
    if b_root.endswith(".json"):
        recorded = recorded_scores(b_root)

        def b_scores(row: str, seed_dir: str) -> tuple[float, float] | None:
            return recorded.get(f"{row}/{seed_dir}")

        b_rows = {key.split("/")[0] for key in recorded}
    else:

        def b_scores(row: str, seed_dir: str) -> tuple[float, float] | None:
            return scores(os.path.join(b_root, row, seed_dir))

        b_rows = set(os.listdir(b_root))
    rows = rows or sorted(set(os.listdir(a_root)) & b_rows)
    print("| row | seeds | A mAP | B mAP | A - B mAP | A tiny AP | B tiny AP | A - B tiny AP |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        a_row, _, b_row = row.partition(":")
        b_row = b_row or a_row
        pairs = []
        for seed_dir in sorted(os.listdir(os.path.join(a_root, a_row))):
            a = scores(os.path.join(a_root, a_row, seed_dir))
            b = b_scores(b_row, seed_dir)
            if a is not None and b is not None:
                pairs.append((a, b))
        if not pairs:
            continue
        columns = [
            [a[0] for a, _ in pairs],
            [b[0] for _, b in pairs],
            [a[0] - b[0] for a, b in pairs],
            [a[1] for a, _ in pairs],
            [b[1] for _, b in pairs],
            [a[1] - b[1] for a, b in pairs],
        ]
        cells = " | ".join(fmt_mean_std(c) for c in columns)
        print(f"| `{row}` | {len(pairs)} | {cells} |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
