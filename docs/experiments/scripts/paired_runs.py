"""Paired differences between two ablation run directories that hold the same rows and seeds
trained with one setting changed (EXPERIMENTS.md, "Deeper stacks"): e.g. the decoder learning-rate
scale, which the ablation rows do not vary.

For each row present in both, per seed: test mAP and mean tiny-class AP of A and of B (each run's
metrics.json), and A - B; then mean +- sample std over the seeds both have.

A row given as ROW_A:ROW_B pairs A's row ROW_A with B's row ROW_B (e.g. a variant of LCNet run
under another row name against the pooled baseline, EXPERIMENTS.md "Why the decoder loses").

usage: python docs/experiments/scripts/paired_runs.py RUNS_A RUNS_B [ROW | ROW_A:ROW_B ...]
"""

import json
import os
import sys

from lcnet_fast.experiments.stats import fmt_mean_std


def scores(run_dir: str) -> tuple[float, float] | None:
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        metrics = json.load(handle)
    tiny = [ap for name, ap in metrics["per_class_AP"].items() if name.startswith("tiny_")]
    return metrics["mAP"], sum(tiny) / len(tiny) if tiny else float("nan")


def main(a_root: str, b_root: str, rows: list[str]) -> None:
    rows = rows or sorted(set(os.listdir(a_root)) & set(os.listdir(b_root)))
    print("| row | seeds | A mAP | B mAP | A - B mAP | A tiny AP | B tiny AP | A - B tiny AP |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        a_row, _, b_row = row.partition(":")
        b_row = b_row or a_row
        pairs = []
        for seed_dir in sorted(os.listdir(os.path.join(a_root, a_row))):
            a = scores(os.path.join(a_root, a_row, seed_dir))
            b = scores(os.path.join(b_root, b_row, seed_dir))
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
