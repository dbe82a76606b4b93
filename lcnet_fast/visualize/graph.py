"""The learned label-correlation graph as a picture and a CSV (the paper's Figures 5 and 6).

The model's learnable matrix ``A = model.label_graph.correlation`` (N, N) is an additive bias on the
GAT's attention scores: node i attends to node j with weight proportional to
``exp(q_i . k_j / sqrt(dh) + A_ij)``. Two readings of it are offered (``transform``):

* ``softmax`` (default): ``W = softmax(A, dim=-1)``, row i = how node i would spread its attention
  over the other labels if the content scores were equal, i.e. the attention prior A induces.
  Rows sum to 1; a uniform row is 1/N everywhere.
* ``raw``: ``W = A`` itself, exactly the parameter (initialised from co-occurrence or cosine
  similarity, then trained).

The CSV holds W (N x N, class names as header and index, row i = from class i, diagonal included),
so it equals the transform of the model's parameter. The picture draws an undirected edge i-j with
strength ``s_ij = (W_ij + W_ji) / 2`` for i != j, rescaled over the off-diagonal pairs to
``r_ij = (s_ij - min s) / (max s - min s)`` in [0, 1] (a trained graph moves away from a flat start
such as one-hot/cosine, whose off-diagonal entries are all equal; the rescaling shows what was
learned, not the common baseline). Edges with ``r_ij < threshold`` (default 0.5) are dropped, and so
are all edges of a graph whose off-diagonal strengths are all equal (nothing learned to show); edge
width and opacity grow with r. Node positions come from stress majorisation (SMACOF) on the
dissimilarity ``d_ij = 0.15 + 0.85 (1 - r_ij)``, so strongly related labels sit closer; the layout
is deterministic (classical MDS start).
"""

from __future__ import annotations

import csv
import os

import numpy as np
import torch

from lcnet_fast.visualize._common import (
    VisualizeError,
    default_out_dir,
    load_for_pictures,
    new_figure,
    save_figure,
)

TRANSFORMS = ("softmax", "raw")


def correlation_matrix(model: torch.nn.Module, transform: str = "softmax") -> np.ndarray:
    """W (N, N) float64 from the model's learned correlation A (see module doc)."""
    if transform not in TRANSFORMS:
        raise VisualizeError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    graph = getattr(model, "label_graph", None)
    if graph is None:
        raise VisualizeError(
            "this model is the plain pooled baseline (--arch pooled): it has no label graph"
        )
    if not getattr(graph, "use_graph", False) or not hasattr(graph, "correlation"):
        raise VisualizeError(
            "this model was built with use_graph=False (the paper's 'no graph' ablation): it has "
            "no learned label-correlation graph to draw"
        )
    a = graph.correlation.detach().to("cpu", torch.float64)
    w = torch.softmax(a, dim=-1) if transform == "softmax" else a
    return w.numpy()


def edge_strengths(w: np.ndarray) -> np.ndarray:
    """Symmetric strengths s = (W + W^T) / 2 with a zero diagonal."""
    s = (w + w.T) / 2.0
    np.fill_diagonal(s, 0.0)
    return s


def relative_strengths(strength: np.ndarray) -> np.ndarray:
    """r = (s - min s) / (max s - min s) over the off-diagonal pairs (zero diagonal; all zero when
    the off-diagonal strengths are all equal)."""
    n = strength.shape[0]
    off = ~np.eye(n, dtype=bool)
    r = np.zeros_like(strength, dtype=np.float64)
    if n < 2:
        return r
    low, high = float(strength[off].min()), float(strength[off].max())
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return r
    r[off] = (strength[off] - low) / (high - low)
    return r


def kept_edges(strength: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """[(i, j, r_ij)] for i < j with r_ij >= threshold and r_ij > 0, strongest first
    (r = relative_strengths(strength))."""
    if not 0.0 <= threshold <= 1.0:
        raise VisualizeError(f"threshold is relative (0 = weakest pair, 1 = strongest): expected "
                             f"a value in [0, 1], got {threshold}")
    r = relative_strengths(strength)
    i, j = np.triu_indices(r.shape[0], k=1)
    values = r[i, j]
    keep = (values > 0) & (values >= threshold)
    edges = [(int(a), int(b), float(v)) for a, b, v in zip(i[keep], j[keep], values[keep],
                                                             strict=True)]
    return sorted(edges, key=lambda e: -e[2])


def graph_layout(strength: np.ndarray, iterations: int = 300) -> np.ndarray:
    """(N, 2) positions: SMACOF stress majorisation on d = 0.15 + 0.85 (1 - r)."""
    n = strength.shape[0]
    if n == 1:
        return np.zeros((1, 2))
    # keep every pair apart a little, so that tightly linked labels stay legible
    d = 0.15 + 0.85 * (1.0 - relative_strengths(strength))
    np.fill_diagonal(d, 0.0)
    # classical MDS start (deterministic)
    j = np.eye(n) - np.ones((n, n)) / n
    b = -0.5 * j @ (d ** 2) @ j
    values, vectors = np.linalg.eigh(b)
    order = np.argsort(values)[::-1][:2]
    x = vectors[:, order] * np.sqrt(np.clip(values[order], 1e-9, None))
    x = x + 1e-3 * np.stack([np.cos(np.arange(n)), np.sin(np.arange(n))], axis=1)
    for _ in range(iterations):  # Guttman transform, unit weights
        diff = x[:, None, :] - x[None, :, :]
        dist = np.sqrt((diff ** 2).sum(-1))
        ratio = np.where(dist > 1e-12, d / np.maximum(dist, 1e-12), 0.0)
        bmat = -ratio
        np.fill_diagonal(bmat, 0.0)
        np.fill_diagonal(bmat, -bmat.sum(axis=1))
        x = bmat @ x / n
    return x - x.mean(axis=0)


def write_matrix_csv(path: str, matrix: np.ndarray, classes: list[str]) -> str:
    """N x N CSV, header ``class,<names>``, one row per class; values with 17 significant digits
    (float64 round-trips exactly)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["class", *classes])
        for name, row in zip(classes, matrix, strict=True):
            writer.writerow([name, *(format(float(v), ".17g") for v in row)])
    return path


def read_matrix_csv(path: str) -> tuple[list[str], np.ndarray]:
    """(classes, matrix) from write_matrix_csv's file."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    classes = rows[0][1:]
    if [row[0] for row in rows[1:]] != classes:
        raise VisualizeError(f"{path}: row names differ from the header")
    return classes, np.array([[float(v) for v in row[1:]] for row in rows[1:]])


def draw_graph(classes: list[str], strength: np.ndarray, edges, positions: np.ndarray,
               title: str):
    n = len(classes)
    side = float(np.clip(3.0 + 0.12 * n, 5.0, 16.0))
    figure = new_figure(side, side)
    axes = figure.add_subplot(1, 1, 1)
    for i, j, rel in reversed(edges):  # strongest drawn last, on top
        axes.plot(*positions[[i, j]].T, color="tab:blue", linewidth=0.5 + 5.0 * rel,
                  alpha=0.25 + 0.6 * rel, zorder=1, solid_capstyle="round")
    degree = np.zeros(n)
    for i, j, _ in edges:
        degree[i] += 1
        degree[j] += 1
    axes.scatter(positions[:, 0], positions[:, 1], s=60 + 25 * degree, c="tab:orange",
                 edgecolors="black", linewidths=0.6, zorder=2)
    fontsize = 9 if n <= 30 else 7
    for name, (x, y) in zip(classes, positions, strict=True):
        axes.annotate(name, (x, y), xytext=(0, 7), textcoords="offset points", ha="center",
                      fontsize=fontsize, zorder=3)
    axes.set_title(title, fontsize=10)
    axes.set_aspect("equal")
    axes.margins(0.12)
    axes.axis("off")
    return figure


def plot_label_graph(checkpoint, out_dir: str | None = None, transform: str = "softmax",
                     threshold: float = 0.5, weights: str | None = None) -> dict:
    """Write ``label_graph_<transform>.png`` and ``label_graph_<transform>.csv`` into out_dir.

    checkpoint: run directory, checkpoint file or a loaded LCNet. Returns {png, csv, matrix (W),
    strength (s), relative (r), edges [(i, j, r_ij)], positions, classes}.
    """
    model = load_for_pictures(checkpoint, weights)
    matrix = correlation_matrix(model, transform)
    classes = list(model.classes)
    strength = edge_strengths(matrix)
    edges = kept_edges(strength, threshold)
    positions = graph_layout(strength)
    out_dir = out_dir or default_out_dir(checkpoint)
    csv_path = write_matrix_csv(os.path.join(out_dir, f"label_graph_{transform}.csv"), matrix,
                                classes)
    label = "softmax(A) (GAT attention prior)" if transform == "softmax" else "A (raw)"
    title = (f"Learned label-correlation graph: {len(classes)} labels, {len(edges)} edges\n"
             f"strength = symmetrised {label}, min-max scaled; edges >= {threshold:g}")
    relative = relative_strengths(strength)
    if len(classes) > 1 and not relative.any():
        title += "\nall off-diagonal strengths are equal: no learned structure to draw"
    figure = draw_graph(classes, strength, edges, positions, title)
    png_path = save_figure(figure, os.path.join(out_dir, f"label_graph_{transform}.png"))
    return {"png": png_path, "csv": csv_path, "matrix": matrix, "strength": strength,
            "relative": relative, "edges": edges, "positions": positions, "classes": classes}
