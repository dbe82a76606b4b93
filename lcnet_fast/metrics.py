"""Multi-label classification metrics, as reported in the LCNet / ML-GCN / Q2L papers.

Pure functions on numpy (float64) so the numbers do not depend on device or dtype.

Definitions (all reported in percent):

* AP (per class): non-interpolated average precision, identical to scikit-learn's
  ``average_precision_score``: AP = sum_k (R_k - R_{k-1}) * P_k over the DISTINCT score thresholds
  in decreasing order (tied scores form one step). Targets of -1 are left out. A class with no
  positive target has AP = NaN, is left out of mAP and listed in ``classes_without_positive``.
* mAP: mean AP over classes with at least one positive. ``AP_std``: population std of those APs (the
  spread reported in the paper's Table 2).
* Thresholded metrics: an entry is predicted positive when ``score >= threshold``; targets of -1
  count as negative. Per class c: precision_c = TP_c / #predicted_c, recall_c = TP_c / #positive_c.
  0/0 convention (as in the ML-GCN/Q2L evaluation code with its epsilon-guarded denominators): a
  class that is never predicted has precision 0, a class with no positive has recall 0; both stay in
  the mean over ALL C classes. CP, CR = means of per-class precision and recall; CF1 = 2 CP CR / (CP
  + CR) -- the harmonic mean of CP and CR, NOT the mean of per-class F1. OP, OR = micro
  precision/recall over all entries (sum TP / sum predicted, sum TP / sum positive); OF1 = 2 OP OR /
  (OP + OR). Any 0/0 is 0.
* Top-k (``*_top3``): per image only the k highest scores that ALSO reach the threshold are
  predicted positive (ties at rank k broken by the lower class index), then the same formulas.
* ``score_spread`` (not in percent): the standard deviation over images of each class's score,
  averaged over classes. It measures how much the scores depend on the image at all; a model that
  gives every image the same scores ("collapsed") has a spread near 0 whatever its mAP looks like
  (AP of a constant score is the class's positive rate, so a collapsed model still gets a number).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["average_precision", "multilabel_metrics", "score_spread"]


def _as_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a numpy array or torch tensor of numbers, got {type(x).__name__}"
        ) from exc


def _validate(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    s, t = _as_array(scores, "scores"), _as_array(targets, "targets")
    if s.ndim != 2:
        raise ValueError(f"scores must have shape (n, C), got {s.shape}")
    if t.shape != s.shape:
        raise ValueError(f"targets must have the same shape as scores {s.shape}, got {t.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must have at least one image and one class, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    if not np.isin(t, (-1.0, 0.0, 1.0)).all():
        bad = np.unique(t[~np.isin(t, (-1.0, 0.0, 1.0))])[:5]
        raise ValueError(f"targets must be 1, 0 or -1, found {bad.tolist()}")
    return s, t


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """AP of one class (1-D inputs); -1 targets are ignored; NaN if no positive remains."""
    s, t = np.asarray(scores, np.float64), np.asarray(targets, np.float64)
    keep = t != -1
    s, y = s[keep], t[keep] == 1
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # last index of each run of equal scores: every threshold is evaluated once, after the whole tie
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_step * precision))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _thresholded(pred: np.ndarray, pos: np.ndarray) -> dict[str, float]:
    tp = (pred & pos).sum(0)
    n_pred, n_pos = pred.sum(0), pos.sum(0)
    cp = float(_safe_div(tp, n_pred).mean())
    cr = float(_safe_div(tp, n_pos).mean())
    op = float(_safe_div(tp.sum(), n_pred.sum()))
    orc = float(_safe_div(tp.sum(), n_pos.sum()))
    return {
        "CP": 100 * cp,
        "CR": 100 * cr,
        "CF1": 100 * _f1(cp, cr),
        "OP": 100 * op,
        "OR": 100 * orc,
        "OF1": 100 * _f1(op, orc),
    }


def score_spread(scores: Any) -> float:
    """Mean over classes of the std over images of the (n, C) scores (population std)."""
    s = _as_array(scores, "scores")
    if s.ndim != 2 or s.shape[0] == 0:
        raise ValueError(f"scores must have shape (n, C) with n >= 1, got {s.shape}")
    return float(s.std(axis=0).mean())


def multilabel_metrics(
    scores: Any, targets: Any, threshold: float = 0.5, top_k: int = 3
) -> dict[str, Any]:
    """All the paper's metrics for probabilities ``scores`` (n, C) and ``targets`` (n, C) in {1, 0,
    -1}.

    Returns a dict with float ``mAP, CP, CR, CF1, OP, OR, OF1`` and ``CP_top3 ... OF1_top3`` (the
    suffix follows ``top_k``), ``AP`` (list of C floats, NaN for classes without a positive),
    ``AP_std``, ``classes_without_positive`` (list of class indices) and ``score_spread``. See the
    module docstring for the exact definitions and 0/0 conventions.
    """
    s, t = _validate(scores, targets)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    n, c = s.shape
    ap = np.array([average_precision(s[:, j], t[:, j]) for j in range(c)])
    valid = ~np.isnan(ap)
    out: dict[str, Any] = {
        "mAP": float(100 * ap[valid].mean()) if valid.any() else float("nan"),
        "AP_std": float(100 * ap[valid].std()) if valid.any() else float("nan"),
        "AP": [float(100 * a) for a in ap],
        "classes_without_positive": [int(j) for j in np.flatnonzero(~valid)],
        "score_spread": score_spread(s),
    }
    pos = t == 1
    pred = s >= threshold
    out.update(_thresholded(pred, pos))
    k = min(top_k, c)
    top = np.argsort(-s, axis=1, kind="mergesort")[:, :k]
    in_top = np.zeros_like(pred)
    np.put_along_axis(in_top, top, True, axis=1)
    out.update({f"{key}_top{top_k}": v for key, v in _thresholded(pred & in_top, pos).items()})
    return out
