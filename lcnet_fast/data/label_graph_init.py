"""Initial label embeddings and label-correlation matrices computed from data.

LCNet's label graph can start from one-hot label embeddings (the paper's choice: no external
knowledge), from word vectors of the class names (ML-GCN style) and be compared with the training
set's co-occurrence statistics. These functions only compute tensors; the model decides how to use
them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["one_hot", "cooccurrence", "load_word_vectors", "cosine_similarity"]


def one_hot(num_classes: int) -> torch.Tensor:
    """``(C, C)`` identity: class i's embedding is the i-th basis vector."""
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return torch.eye(int(num_classes), dtype=torch.float32)


def cooccurrence(labels: Any) -> torch.Tensor:
    """Conditional co-occurrence ``A[i, j] = P(j present | i present)`` from an ``(n, C)`` label
    matrix.

    Normalisation, with -1 (ignored) entries left out pairwise::

        A[i, j] = #{images: y_i = 1 and y_j = 1} / #{images: y_i = 1 and y_j != -1}

    so an image whose label j is unknown says nothing about P(j | i). ``A[i, i] = 1``. A row whose
    denominator is 0 (class i never present, or j always unknown when i is) is 0 off the diagonal.
    The matrix is not symmetric. Returns float32.
    """
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 2:
        raise ValueError(f"labels must have shape (n, C), got {tuple(y.shape)}")
    if not bool(((y == 1) | (y == 0) | (y == -1)).all()):
        raise ValueError("labels must contain only 1, 0 and -1")
    pos = (y == 1).double()
    known = (y != -1).double()
    both = pos.T @ pos  # (C, C): i present and j present
    denom = pos.T @ known  # (C, C): i present and j known
    a = torch.where(denom > 0, both / denom.clamp_min(1), torch.zeros_like(both))
    a.fill_diagonal_(1.0)
    return a.to(torch.float32)


def cosine_similarity(embeddings: Any) -> torch.Tensor:
    """``(C, C)`` cosine similarity of the rows of ``(C, E)`` embeddings; a zero row gives 0
    similarity."""
    e = (
        torch.as_tensor(embeddings, dtype=torch.float64)
        if not isinstance(embeddings, torch.Tensor)
        else embeddings.detach().to(torch.float64)
    )
    if e.ndim != 2:
        raise ValueError(f"embeddings must have shape (C, E), got {tuple(e.shape)}")
    unit = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (unit @ unit.T).to(torch.float32)


# ----------------------------------------------------------------------------------------------
# word vectors


def _candidates(name: str) -> list[str]:
    forms = [name, name.replace(" ", "_"), name.replace("_", " "), name.replace("-", "_")]
    out: list[str] = []
    for f in forms + [f.lower() for f in forms]:
        if f not in out:
            out.append(f)
    return out


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[ _\-]+", name) if w]


def _lookup(table: dict[str, np.ndarray], classes: Sequence[str], source: str) -> torch.Tensor:
    rows, missing = [], []
    for name in classes:
        hit = next((table[k] for k in _candidates(name) if k in table), None)
        if hit is None:
            parts = [
                next((table[k] for k in (w, w.lower()) if k in table), None) for w in _words(name)
            ]
            if len(parts) > 1 and all(p is not None for p in parts):
                hit = np.mean(np.stack(parts), axis=0)
        if hit is None:
            missing.append(name)
        else:
            rows.append(np.asarray(hit, dtype=np.float64))
    if missing:
        raise KeyError(
            f"{source}: no word vector for class name(s) {missing} (tried the name as is, with "
            f"spaces/underscores swapped, lower-cased, and the average of its words)"
        )
    dims = {r.shape for r in rows}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ValueError(
            f"{source}: word vectors must all be 1-D of one length, got shapes {sorted(dims)}"
        )
    return torch.from_numpy(np.stack(rows)).to(torch.float32)


def _needed_keys(classes: Sequence[str]) -> set[str]:
    keys = set()
    for name in classes:
        keys.update(_candidates(name))
        for w in _words(name):
            keys.update((w, w.lower()))
    return keys


def _read_text_vectors(path: str, wanted: set[str]) -> dict[str, np.ndarray]:
    """GloVe (``word v1 ... vE``) or word2vec text (same, after an ``N E`` header line)."""
    table: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if len(parts) < 2 or parts[0] not in wanted or parts[0] in table:
                continue
            try:
                table[parts[0]] = np.asarray([float(v) for v in parts[1:]], dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"{path} line {line_no}: not a word followed by numbers") from exc
    return table


def _ordered_rows(
    array: np.ndarray, classes: Sequence[str], path: str, names: list[str] | None
) -> torch.Tensor:
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a (C, E) array, got shape {array.shape}")
    if names is None:
        if array.shape[0] != len(classes):
            raise ValueError(
                f"{path}: {array.shape[0]} rows but {len(classes)} classes, and no class list "
                f"beside it to match rows to names"
            )
        return torch.as_tensor(np.asarray(array, dtype=np.float32))
    if len(names) != array.shape[0]:
        raise ValueError(f"{path}: {array.shape[0]} rows but its class list has {len(names)} names")
    return _lookup(dict(zip(names, array, strict=True)), classes, path)


def load_word_vectors(path: str, classes: Sequence[str]) -> torch.Tensor:
    """``(C, E)`` float32 word vectors for ``classes``, in that order.

    Formats, by extension:

    * ``.txt`` / ``.vec``: GloVe or word2vec text (a leading ``N E`` header line is skipped). Only
      the needed words are kept while streaming, so a full GloVe file is fine.
    * ``.npy``: a ``(N, E)`` array; if ``<path minus .npy>.classes.txt`` exists (one name per line)
      rows are matched by name, otherwise the rows must already be the classes in order (N == C).
    * ``.npz``: one array per name (``np.savez(path, **{name: vector})``).
    * ``.pt`` / ``.pth``: ``{name: tensor}`` or a ``(C, E)`` tensor in class order, or ``{"classes":
      [...], "vectors": (N, E)}``; loaded with ``weights_only=True``.

    Name matching: the class name as is, with spaces and underscores swapped, and lower-cased;
    failing that, a multi-word name ("traffic light", "traffic_light", "hair-drier") gets the mean
    of its words' vectors. Class names with no vector raise a ``KeyError`` listing all of them.
    Pickle files (ML-GCN's ``.pkl``) are refused: convert them to ``.npy`` or ``.pt``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"word-vector file not found: {path}")
    classes = list(classes)
    if not classes:
        raise ValueError("classes is empty")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".txt", ".vec"):
        return _lookup(_read_text_vectors(path, _needed_keys(classes)), classes, path)
    if ext == ".npy":
        array = np.load(path, allow_pickle=False)
        sidecar = path[: -len(".npy")] + ".classes.txt"
        names = None
        if os.path.isfile(sidecar):
            with open(sidecar, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        return _ordered_rows(array, classes, path, names)
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return _lookup({k: z[k] for k in z.files}, classes, path)
    if ext in (".pt", ".pth"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, torch.Tensor):
            return _ordered_rows(obj.numpy(), classes, path, None)
        if isinstance(obj, dict) and set(obj) == {"classes", "vectors"}:
            return _ordered_rows(
                torch.as_tensor(obj["vectors"]).numpy(), classes, path, list(obj["classes"])
            )
        if isinstance(obj, dict):
            return _lookup(
                {str(k): torch.as_tensor(v).numpy() for k, v in obj.items()}, classes, path
            )
        raise ValueError(
            f"{path}: expected a dict of name -> vector or a (C, E) tensor, "
            f"got {type(obj).__name__}"
        )
    if ext in (".pkl", ".pickle"):
        raise ValueError(
            f"{path}: pickle files are not loaded (unsafe); save the vectors as .npy or .pt"
        )
    raise ValueError(
        f"{path}: unknown word-vector format {ext!r}; use .txt/.vec, .npy, .npz or .pt"
    )
