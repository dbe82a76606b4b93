"""Training curves of a run from its ``log.csv`` (written by ``python -m lcnet_fast.train``, one row
per epoch: epoch, steps, train_loss, lr, images_per_s, epoch_seconds, val_metric, val_mAP, best).

Panels: mean training loss per image (ASL, sum reduction divided by images) against epoch; the
validation mAP at the epochs that were evaluated (blank cells are skipped, the best epoch marked);
the learning rate at the end of each epoch.
"""

from __future__ import annotations

import csv
import os

from lcnet_fast.visualize._common import VisualizeError, new_figure, save_figure


def read_log(run_dir: str) -> dict[str, list]:
    """{epoch, train_loss, lr, val_epoch, val_mAP, best_epoch} from <run_dir>/log.csv (floats;
    val_* only for rows with a validation value). run_dir may also be the log.csv path."""
    path = run_dir if os.path.isfile(run_dir) else os.path.join(run_dir, "log.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no training log: {path} does not exist (is {run_dir} a run "
                                "directory written by python -m lcnet_fast.train?)")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise VisualizeError(f"{path} has no finished epoch yet")
    missing = {"epoch", "train_loss"} - set(rows[0])
    if missing:
        raise VisualizeError(f"{path} lacks column(s) {', '.join(sorted(missing))}")
    series = {"epoch": [], "train_loss": [], "lr": [], "val_epoch": [], "val_mAP": [],
              "best_epoch": []}
    for row in rows:
        epoch = int(row["epoch"])
        series["epoch"].append(epoch)
        series["train_loss"].append(float(row["train_loss"]))
        series["lr"].append(float(row["lr"]) if row.get("lr") else float("nan"))
        if row.get("val_mAP"):
            series["val_epoch"].append(epoch)
            series["val_mAP"].append(float(row["val_mAP"]))
            if row.get("best") == "1":
                series["best_epoch"].append(epoch)
    return series


def plot_curves(run_dir: str, out: str | None = None) -> dict:
    """Write the curves PNG (default <run_dir>/figures/curves.png); return read_log()'s series
    plus ``png`` -- the exact values plotted."""
    series = read_log(run_dir)
    folder = os.path.dirname(run_dir) if os.path.isfile(run_dir) else run_dir
    out = out or os.path.join(folder, "figures", "curves.png")
    figure = new_figure(12, 3.6)
    loss_ax, map_ax, lr_ax = (figure.add_subplot(1, 3, i) for i in (1, 2, 3))
    loss_ax.plot(series["epoch"], series["train_loss"], marker="o")
    loss_ax.set(title="training loss (per image)", xlabel="epoch", ylabel="ASL")
    if series["val_epoch"]:
        map_ax.plot(series["val_epoch"], series["val_mAP"], marker="o", color="tab:green")
        best = series["best_epoch"][-1] if series["best_epoch"] else None
        if best is not None:
            value = series["val_mAP"][series["val_epoch"].index(best)]
            map_ax.scatter([best], [value], s=120, facecolors="none", edgecolors="red",
                           zorder=3, label=f"best: epoch {best}, {value:.2f}")
            map_ax.legend(fontsize=8, loc="lower right")
    else:
        map_ax.text(0.5, 0.5, "no validation epochs", ha="center", va="center",
                    transform=map_ax.transAxes)
    map_ax.set(title="validation mAP (%)", xlabel="epoch", ylabel="mAP")
    lr_ax.plot(series["epoch"], series["lr"], marker="o", color="tab:purple")
    lr_ax.set(title="learning rate (end of epoch)", xlabel="epoch")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, map_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f"run {os.path.basename(os.path.abspath(folder))}", fontsize=10, y=1.04)
    series["png"] = save_figure(figure, out)
    return series
