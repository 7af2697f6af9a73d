"""Standard score curves of class 1: counts at every distinct score, PR and ROC curves,
average precision and ROC-AUC (equal to sklearn's), all sort-based."""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from bah.metrics.inputs import _check_finite, _labels, _to_numpy


def _count_ge(sorted_valid: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of values >= each threshold, over an ascending array without NaN."""
    return sorted_valid.shape[0] - np.searchsorted(sorted_valid, thresholds, side="left")


def _sorted_valid(scores: np.ndarray) -> np.ndarray:
    s = np.sort(scores)
    if s.dtype.kind == "f" and s.shape[0] and np.isnan(s[-1]):
        # np.sort puts NaN last; a NaN never satisfies p >= th in the original, so drop them
        s = s[: s.shape[0] - int(np.isnan(s).sum())]
    return s


def _split_sorted(y: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return np.sort(s[y == 1]), np.sort(s[y == 0])


def binary_curve(labels: Any, scores: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts at every distinct score: (thresholds descending, tps, fps), as sklearn's
    ``_binary_clf_curve``: at threshold t, tps/fps count positives/negatives with score >= t."""
    y = _labels(labels)
    s = _to_numpy(scores, "scores").reshape(-1).astype(np.float64)
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"scores: {s.shape[0]} values but labels has {y.shape[0]} frames")
    _check_finite(s, "scores")
    order = np.argsort(s, kind="stable")[::-1]
    s = s[order]
    y = y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.shape[0] - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    return s[last_of_run], tps, fps


def precision_recall_curve(labels: Any, scores: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) with sklearn's conventions: thresholds ascending,
    last point (precision 1, recall 0) appended. Recall is NaN when there is no positive."""
    th, tps, fps = binary_curve(labels, scores)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps.size and tps[-1] > 0 else np.full(tps.shape, np.nan)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], th[::-1]


def roc_curve(labels: Any, scores: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with (0, 0) prepended (threshold +inf). NaN rates when a class
    is absent."""
    th, tps, fps = binary_curve(labels, scores)
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    return fpr, tpr, np.r_[np.inf, th]


def _ap_auc_sorted(pos: np.ndarray, neg: np.ndarray) -> Tuple[float, float]:
    """Standard AP and ROC-AUC from ascending positive and negative scores (no NaN).

    Only thresholds at a positive's score move recall, so both need the counts at the
    distinct positive scores u only: AP = sum over u of (recall step) * precision(u), every
    count taken as "score >= u" (ties grouped, exactly as sklearn's curve does); AUC is the
    Mann-Whitney statistic, each positive scoring #neg < u plus half of #neg == u (equal to the
    trapezoid area under the ROC curve). One searchsorted serves both.
    """
    n_pos, n_neg = pos.shape[0], neg.shape[0]
    if n_pos == 0:
        return float("nan"), float("nan")
    first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])  # pos is sorted: run starts
    u = pos[first]  # ascending distinct positive scores
    mult = np.diff(np.r_[first, n_pos])  # positives tied at each u
    below = np.searchsorted(neg, u, side="left")  # negatives < u
    tp = n_pos - first  # positives >= u
    fp = n_neg - below  # negatives >= u
    # walk from the highest threshold down: recall rises by the positives tied at u
    tp_down, fp_down = tp[::-1], fp[::-1]
    step = np.diff(tp_down, prepend=0)
    ap = float(np.sum(step * (tp_down / (tp_down + fp_down))) / n_pos)
    if n_neg == 0:
        return ap, float("nan")
    # negatives equal to u: rare with real-valued scores, so search the right side only there
    at = np.minimum(below, n_neg - 1)
    tied = neg[at] == u
    equal = np.zeros(u.shape[0], dtype=np.int64)
    if tied.any():
        equal[tied] = np.searchsorted(neg, u[tied], side="right") - below[tied]
    twice = (mult * (2 * below + equal)).sum(dtype=np.int64)  # 2 x (#neg < u + #neg == u / 2)
    return ap, float(twice / 2.0 / (n_pos * float(n_neg)))


def average_precision(labels: Any, scores: Any) -> float:
    """Standard (step-wise) average precision of class 1; equals sklearn's
    ``average_precision_score``. NaN when there is no positive."""
    y = _labels(labels)
    s = _to_numpy(scores, "scores").reshape(-1).astype(np.float64)
    _check_finite(s, "scores")
    return _ap_auc_sorted(*_split_sorted(y, s))[0]


def roc_auc(labels: Any, scores: Any) -> float:
    """ROC-AUC of class 1; equals sklearn's ``roc_auc_score``. NaN (not an error) when one
    class is absent, so a batch of per-participant scores never stops on it."""
    y = _labels(labels)
    s = _to_numpy(scores, "scores").reshape(-1).astype(np.float64)
    _check_finite(s, "scores")
    pos, neg = _split_sorted(y, s)
    if pos.shape[0] == 0:
        return float("nan")
    return _ap_auc_sorted(pos, neg)[1]
