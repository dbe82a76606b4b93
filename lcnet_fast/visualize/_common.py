"""Shared pieces of the picture commands: headless matplotlib figures, checkpoint loading, paths."""

from __future__ import annotations

import os

import torch

from lcnet_fast.errors import VisualizeError  # noqa: F401 (re-exported: its old home)


def new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas: no pyplot, no global backend switch, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str, dpi: int = 150) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def load_for_pictures(checkpoint: str | torch.nn.Module, weights: str | None = None):
    """An LCNet with `classes`/`preprocess` attached: a loaded model is passed through, a run
    directory or checkpoint file is loaded on the CPU (lcnet_fast.inference.load_model)."""
    if isinstance(checkpoint, torch.nn.Module):
        model = checkpoint
        if not hasattr(model, "classes"):
            model.classes = [str(i) for i in range(model.num_classes)]
        return model.eval()
    from lcnet_fast.inference import load_model

    return load_model(str(checkpoint), "cpu", weights)


def default_out_dir(checkpoint: str | torch.nn.Module) -> str:
    """<run dir>/figures for a run directory, <run dir>/figures for <run dir>/checkpoints/x, else
    the checkpoint file's folder + /figures; ./figures for an in-memory model."""
    if isinstance(checkpoint, torch.nn.Module):
        return "figures"
    path = os.path.abspath(str(checkpoint))
    if os.path.isdir(path):
        return os.path.join(path, "figures")
    folder = os.path.dirname(path)
    if os.path.basename(folder) == "checkpoints":
        folder = os.path.dirname(folder)
    return os.path.join(folder, "figures")
