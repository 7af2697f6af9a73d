"""The original's average precision (``bah_metrics.average_precision``): a trapezoid under a
1000-threshold PR curve, vectorised, numbers identical to the original's."""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from bah.metrics.curves import _count_ge, _sorted_valid
from bah.metrics.inputs import _labels, _to_numpy


# The original's thresholds: np.arange(0, 1, 0.001) -> 0, 0.001, ..., 0.999 (1000 values).
LEGACY_THRESHOLDS = np.arange(0, 1, 0.001)


def _legacy_curve_sorted(pos: np.ndarray, neg: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    # The original compares the probability array with Python-float thresholds; under
    # numpy's weak-scalar rule the thresholds are first cast to the array's dtype.
    th = LEGACY_THRESHOLDS.astype(pos.dtype if pos.dtype.kind == "f" else np.float64)
    tp = _count_ge(pos, th)
    fp = _count_ge(neg, th)
    return tp, fp, th


def legacy_pr_curve(labels: Any, scores: Any, compat_dtype: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The original's PR curve: (thresholds 0..0.999, recall, precision), 1000 points each.

    A frame is positive at threshold th when ``p >= th`` (NaN never is); precision is 0 when
    nothing is predicted positive. ``compat_dtype`` compares in the scores' own dtype as the
    original does; otherwise scores are upcast to float64 first.
    """
    y = _labels(labels)
    p = _to_numpy(scores, "scores").reshape(-1)
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"scores: {p.shape[0]} values but labels has {y.shape[0]} frames")
    if not compat_dtype or p.dtype.kind != "f":
        p = p.astype(np.float64)
    n_pos = int(y.sum())
    pos = _sorted_valid(p[y == 1])
    neg = _sorted_valid(p[y == 0])
    tp, fp, _ = _legacy_curve_sorted(pos, neg)
    return _legacy_pr_from_counts(tp, fp, n_pos)


def _legacy_pr_from_counts(tp: np.ndarray, fp: np.ndarray, n_pos: int):
    pp = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pp > 0, tp / np.maximum(pp, 1), 0.0)
        recall = tp / n_pos if n_pos > 0 else np.full(tp.shape, np.nan)
    return LEGACY_THRESHOLDS.copy(), recall.astype(np.float64), precision.astype(np.float64)


def _legacy_ap_from_curve(recall: np.ndarray, precision: np.ndarray) -> float:
    # sklearn.metrics.auc: trapezoid, sign flipped when x decreases (recall falls with th)
    dx = np.diff(recall)
    direction = 1.0
    if np.any(dx < 0):
        direction = -1.0  # recall is non-increasing by construction, never mixed
    return float(direction * np.trapezoid(precision, recall))


def legacy_average_precision(labels: Any, scores: Any, compat_dtype: bool = True) -> float:
    """The original's AP (``bah_metrics.average_precision``), vectorised.

    Trapezoid (``sklearn.metrics.auc``) under the 1000-threshold PR curve of
    :func:`legacy_pr_curve`. It is not standard AP: it integrates only over
    [recall(0.999), 1], so a perfectly separating but confident model scores 0.0 and scores of
    0.8 / 0.2 score 0.5. NaN when there is no positive (the original asserts).
    """
    _, recall, precision = legacy_pr_curve(labels, scores, compat_dtype=compat_dtype)
    if np.isnan(recall).any():
        return float("nan")
    return _legacy_ap_from_curve(recall, precision)


def _legacy_ap(pos: np.ndarray, neg: np.ndarray, n_pos: int) -> float:
    """``pos``/``neg``: ascending scores without NaN; ``n_pos``: every positive, NaN ones too
    (recall's denominator)."""
    if n_pos == 0:
        return float("nan")
    tp, fp, _ = _legacy_curve_sorted(pos, neg)
    _, recall, precision = _legacy_pr_from_counts(tp, fp, n_pos)
    return _legacy_ap_from_curve(recall, precision)
