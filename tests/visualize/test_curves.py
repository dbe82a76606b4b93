"""python -m lcnet_fast.visualize curves: the plotted series are the run's log.csv values."""

import csv

import pytest

from lcnet_fast.visualize import plot_curves
from lcnet_fast.visualize.__main__ import main


def test_plotted_series_equal_log_csv(trained_run, tmp_path, assert_png):
    with open(trained_run / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    series = plot_curves(str(trained_run), str(tmp_path / "curves.png"))
    assert series["epoch"] == [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert series["train_loss"] == [float(r["train_loss"]) for r in rows]
    assert series["lr"] == [float(r["lr"]) for r in rows]
    assert series["val_epoch"] == [int(r["epoch"]) for r in rows if r["val_mAP"]]
    assert series["val_mAP"] == [float(r["val_mAP"]) for r in rows if r["val_mAP"]]
    assert series["best_epoch"] == [int(r["epoch"]) for r in rows if r["best"] == "1"]
    # the figure holds exactly these points
    assert_png(series["png"])


def test_plotted_lines_hold_the_series(trained_run, tmp_path, monkeypatch):
    import lcnet_fast.visualize.curves as curves

    figures = []
    original = curves.new_figure
    monkeypatch.setattr(curves, "new_figure", lambda *a: figures.append(original(*a)) or
                        figures[-1])
    series = plot_curves(str(trained_run), str(tmp_path / "c.png"))
    loss_ax, map_ax, lr_ax = figures[0].axes
    (loss_line,) = loss_ax.get_lines()
    assert list(loss_line.get_xdata()) == series["epoch"]
    assert list(loss_line.get_ydata()) == series["train_loss"]
    assert list(map_ax.get_lines()[0].get_ydata()) == series["val_mAP"]
    assert list(lr_ax.get_lines()[0].get_ydata()) == series["lr"]


def test_cli_default_output_and_missing_log(trained_run, tmp_path, assert_png):
    assert main(["curves", str(trained_run)]) == 0
    assert_png(trained_run / "figures" / "curves.png")
    with pytest.raises(FileNotFoundError, match="log.csv"):
        main(["curves", str(tmp_path)])
