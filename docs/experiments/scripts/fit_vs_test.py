"""How well each row fits its training images against how well it scores on unseen ones
(EXPERIMENTS.md, "Why the decoder loses"): per row of an ablation run directory, over its finished
seeds, the training loss of the last epoch (log.csv's train_loss: the ASL loss averaged over that
epoch's batches, augmented, model weights not EMA), the last epoch's validation mAP and the test
mAP (metrics.json). A row that fits its training images better but scores lower on the test
images overfits.

usage: python docs/experiments/scripts/fit_vs_test.py RUNS_DIR [RUNS_DIR ...]
"""

import csv
import json
import os
import sys

from lcnet_fast.experiments.stats import fmt_mean_std


def seed_scores(seed_dir: str) -> tuple[float, float, float] | None:
    """(last train loss, last val mAP, test mAP) of one finished run, else None."""
    metrics_path = os.path.join(seed_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        return None
    with open(os.path.join(seed_dir, "log.csv"), encoding="utf-8", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    with open(metrics_path, encoding="utf-8") as handle:
        test = json.load(handle)["mAP"]
    return float(last["train_loss"]), float(last["val_mAP"]), float(test)


def main(roots: list[str]) -> None:
    print("| runs | row | seeds | train loss (last epoch) | val mAP (last epoch) | test mAP |")
    print("|---|---|---|---|---|---|")
    for root in roots:
        for row in sorted(os.listdir(root)):
            seeds = sorted(os.listdir(os.path.join(root, row)))
            scores = [s for s in (seed_scores(os.path.join(root, row, d)) for d in seeds) if s]
            if not scores:
                continue
            loss, val, test = zip(*scores, strict=True)
            print(
                f"| `{os.path.basename(root.rstrip('/'))}` | `{row}` | {len(scores)} | "
                f"{fmt_mean_std(loss, digits=3)} | {fmt_mean_std(val)} | {fmt_mean_std(test)} |"
            )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.splitlines()[-1])
    main(sys.argv[1:])
