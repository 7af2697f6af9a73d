"""Frame-, video- and participant-level metrics for binary A/H recognition.

Everything is computed in float64 with numpy (torch tensors are accepted and copied to
numpy). Class 1 is "With A-H", class 0 "No A-H".

Two modes:

* default ("fixed"): probabilities come from a max-shifted float64 softmax, so they are never
  NaN for finite logits; non-finite logits are refused with an error.
* ``compat=True``: reproduces the original ``bah_metrics.bah_perfs`` number for number,
  including its unshifted softmax evaluated in the dtype the logits are stored in (float16
  under AMP), the resulting NaN probabilities (a NaN never passes a threshold, so such a
  frame counts as a negative prediction) and its home-made AP ("legacy AP", see
  :func:`legacy_average_precision`).

All curves are sort-based: the scores of each class are sorted once and every count
"how many scores are >= t" is a ``searchsorted``; nothing loops over thresholds or frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from bah.core.registry import Registry

__all__ = [
    "METRICS",
    "MetricSpec",
    "VIDEO_AGGREGATIONS",
    "VideoAggregation",
    "VideoScores",
    "LEGACY_THRESHOLDS",
    "ORIGINAL_KEYS",
    "softmax",
    "legacy_softmax",
    "legacy_pr_curve",
    "legacy_average_precision",
    "binary_curve",
    "precision_recall_curve",
    "roc_curve",
    "average_precision",
    "roc_auc",
    "frame_metrics",
    "to_original_keys",
    "from_original_keys",
    "bah_perfs",
    "video_labels_from_frames",
    "video_aggregate",
    "video_metrics",
    "participant_breakdown",
    "perf_record",
    "predictions_to_arrays",
    "evaluate_predictions",
    "flatten_metrics",
    "metric_spec",
    "is_better",
]

# The original's thresholds: np.arange(0, 1, 0.001) -> 0, 0.001, ..., 0.999 (1000 values).
LEGACY_THRESHOLDS = np.arange(0, 1, 0.001)


# --------------------------------------------------------------------------- registries
@dataclass(frozen=True)
class MetricSpec:
    """A scalar metric that model selection / early stopping can track."""

    name: str
    higher_is_better: bool
    original_key: Optional[str]
    description: str


METRICS: Registry[MetricSpec] = Registry("metric")

for _spec in (
    MetricSpec("acc", True, "CL_ACC", "accuracy (fraction, 0-1)"),
    MetricSpec("f1_neg", True, "F1_NEG", "F1 of class 0 (No A-H)"),
    MetricSpec("f1_pos", True, "F1_POS", "F1 of class 1 (With A-H)"),
    MetricSpec("avgf1", True, "MACRO_F1", "macro F1 = mean(F1_NEG, F1_POS), the paper's AVGF1"),
    MetricSpec("wf1", True, "W_F1", "support-weighted F1"),
    MetricSpec("ap_legacy", True, "Average_precision_POS",
               "the original's AP: trapezoid over a 1000-threshold PR curve (not standard AP)"),
    MetricSpec("ap", True, None, "standard average precision of class 1 (sklearn average_precision_score)"),
    MetricSpec("auc", True, None, "ROC-AUC of class 1 (NaN when one class is absent)"),
    # not computed here: the trainer's mean cross-entropy, listed so selection can use it
    MetricSpec("loss", False, None, "mean loss reported by the trainer (lower is better)"),
):
    METRICS.register(_spec.name, _spec)

# Key names written by the original into perf-*.yml (bah_metrics constants).
ORIGINAL_KEYS: Dict[str, str] = {
    "acc": "CL_ACC",
    "f1_neg": "F1_NEG",
    "f1_pos": "F1_POS",
    "avgf1": "MACRO_F1",
    "wf1": "W_F1",
    "ap_legacy": "Average_precision_POS",
    "confusion": "CONFUSION_MATRIX",
}


def metric_spec(key: str) -> MetricSpec:
    """Spec of a metric key, plain (``avgf1``) or prefixed (``frame_avgf1``, ``video_vote_ap``)."""
    if key in METRICS:
        return METRICS.get(key)
    for name in sorted(METRICS.list(), key=len, reverse=True):
        if key.endswith("_" + name):
            return METRICS.get(name)
    return METRICS.get(key)  # raises with the list of known names


def is_better(key: str, value: float, best: Optional[float], min_delta: float = 0.0,
              ties_improve: bool = False) -> bool:
    """True when ``value`` improves on ``best`` for metric ``key`` (NaN never improves).

    ``ties_improve=True`` counts an equal value as an improvement, the original's rule
    (``val[AP_POS] >= best_perf``: ties go to the later epoch).
    """
    if value is None or math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    gain = value - best if metric_spec(key).higher_is_better else best - value
    return gain >= min_delta if ties_improve else gain > min_delta


# --------------------------------------------------------------------------- input helpers
def _to_numpy(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"{name} is required")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16; float32 holds it exactly
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def _labels(labels: Any, name: str = "labels") -> np.ndarray:
    y = _to_numpy(labels, name).reshape(-1)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            bad = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(f"{name}: non-finite value at index {bad}")
    y_int = y.astype(np.int64)
    if y.dtype.kind in "fc" and not np.array_equal(y_int, y):
        bad = int(np.flatnonzero(y_int != y)[0])
        raise ValueError(f"{name}: labels must be 0 or 1, found {y[bad]!r} at index {bad}")
    bad_mask = (y_int != 0) & (y_int != 1)
    if bad_mask.any():
        bad = int(np.flatnonzero(bad_mask)[0])
        raise ValueError(f"{name}: labels must be 0 or 1, found {y_int[bad]} at index {bad}")
    return y_int


def _two_columns(x: Any, name: str, n: int) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 0 or a.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape (..., 2) for 2 classes, got {tuple(a.shape)}")
    a = a.reshape(-1, 2)
    if a.shape[0] != n:
        raise ValueError(f"{name}: {a.shape[0]} rows but labels has {n} frames")
    return a


def _mask(mask: Any, n: int) -> Optional[np.ndarray]:
    if mask is None:
        return None
    m = _to_numpy(mask, "mask").reshape(-1)
    if m.shape[0] != n:
        raise ValueError(f"mask: {m.shape[0]} entries but labels has {n} frames")
    return m.astype(bool)


# --------------------------------------------------------------------------- softmax
def softmax(logits: Any) -> np.ndarray:
    """Max-shifted softmax over the last axis, in float64 (never NaN for finite logits)."""
    x = _to_numpy(logits, "logits").astype(np.float64)
    if x.ndim == 0:
        raise ValueError("logits: expected at least one axis of classes")
    c = x.shape[-1]
    if c > 16:
        x = x - x.max(axis=-1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(axis=-1, keepdims=True)
        return x
    # numpy reductions over a short last axis are ~20x slower than column-wise ufuncs;
    # with 2 classes this is the whole cost of scoring 10 M frames
    m = x[..., 0].copy()
    for k in range(1, c):
        np.maximum(m, x[..., k], out=m)
    x -= m[..., None]
    np.exp(x, out=x)
    total = x[..., 0].copy()
    for k in range(1, c):
        total += x[..., k]
    x /= total[..., None]
    return x


def legacy_softmax(logits: Any) -> np.ndarray:
    """The original's ``exp(x) / sum(exp(x))``: no max shift, evaluated in the stored dtype.

    Overflow gives inf / inf = NaN, exactly as in the original (float16 overflows above ~11.09).
    """
    x = _to_numpy(logits, "logits")
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x * 1.0)
        return e / np.sum(e, axis=1, keepdims=True)


def _class1_prob(lg: np.ndarray) -> np.ndarray:
    """Column 1 of :func:`softmax` for (n, 2) logits, bit for bit, without the (n, 2) temporaries.

    With the max shift, the larger logit's exponential is exactly 1, so
    p1 = 1 / (1 + e) when l1 >= l0 and e / (1 + e) otherwise, with e = exp(-|l1 - l0|).
    """
    d = lg[:, 1].astype(np.float64) - lg[:, 0].astype(np.float64)
    up = d >= 0
    e = np.abs(d, out=d)
    np.negative(e, out=e)
    np.exp(e, out=e)
    den = e + 1.0
    np.copyto(e, 1.0, where=up)
    e /= den
    return e


def _legacy_class1_prob(lg: np.ndarray) -> np.ndarray:
    """Column 1 of :func:`legacy_softmax` (same operations, same dtype, NaN on overflow)."""
    with np.errstate(over="ignore", invalid="ignore"):
        e0 = np.exp(lg[:, 0] * 1.0)
        e1 = np.exp(lg[:, 1] * 1.0)
        return e1 / (e0 + e1)


# --------------------------------------------------------------------------- curves
def _count_ge(sorted_valid: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Number of values >= each threshold, over an ascending array without NaN."""
    return sorted_valid.shape[0] - np.searchsorted(sorted_valid, thresholds, side="left")


def _sorted_valid(scores: np.ndarray) -> np.ndarray:
    s = np.sort(scores)
    if s.dtype.kind == "f" and s.shape[0] and np.isnan(s[-1]):
        # np.sort puts NaN last; a NaN never satisfies p >= th in the original, so drop them
        s = s[: s.shape[0] - int(np.isnan(s).sum())]
    return s


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


def _check_finite(s: np.ndarray, name: str) -> None:
    if s.dtype.kind == "f" and not np.isfinite(s).all():
        bad_rows = ~np.isfinite(s).reshape(s.shape[0], -1).all(axis=1) if s.ndim else np.array([True])
        bad = np.flatnonzero(bad_rows)
        raise ValueError(f"{name}: {bad.size} frames with non-finite values (first at index {int(bad[0])})")


def _split_sorted(y: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return np.sort(s[y == 1]), np.sort(s[y == 0])


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


# --------------------------------------------------------------------------- frame level
def _scores_and_preds(
    n: int, logits: Any, probs: Any, preds: Any, compat: bool
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Return (float64 class-1 scores, legacy class-1 scores in compat dtype, hard preds)."""
    p64 = p_legacy = pred = None
    if logits is not None:
        lg = _two_columns(logits, "logits", n)
        if compat:
            p_legacy = _legacy_class1_prob(lg)
            if np.isfinite(lg).all():
                p64 = _class1_prob(lg)
            else:  # the original would not stop; the sklearn-style extras just become NaN
                p64 = None
        else:
            _check_finite(lg, "logits")
            p64 = p_legacy = _class1_prob(lg)
        # argmax: ties go to class 0, as in the original trainer
        pred = (lg[:, 1] > lg[:, 0]).astype(np.int64)
    elif probs is not None:
        pr = _to_numpy(probs, "probs")
        if pr.ndim >= 2 and pr.shape[-1] == 2:
            pr2 = _two_columns(pr, "probs", n)
            p1, pred = pr2[:, 1], (pr2[:, 1] > pr2[:, 0]).astype(np.int64)
        else:
            p1 = pr.reshape(-1)
            if p1.shape[0] != n:
                raise ValueError(f"probs: {p1.shape[0]} values but labels has {n} frames")
            pred = (p1 > 0.5).astype(np.int64)
        if not compat:
            _check_finite(p1, "probs")
            if p1.size and (p1.min() < 0 or p1.max() > 1):
                raise ValueError("probs: class-1 probabilities must lie in [0, 1]")
        p_legacy = p1
        p64 = p1.astype(np.float64) if np.isfinite(p1).all() else None
    if preds is not None:
        pred = _labels(preds, "preds")
        if pred.shape[0] != n:
            raise ValueError(f"preds: {pred.shape[0]} values but labels has {n} frames")
    if pred is None:
        raise ValueError("frame_metrics needs logits, probs or preds")
    return p64, p_legacy, pred


def _select(a: Optional[np.ndarray], m: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return a if a is None or m is None else a[m]


def _classification(y: np.ndarray, pred: np.ndarray) -> Dict[str, Any]:
    n = y.shape[0]
    counts = np.bincount(y * 2 + pred, minlength=4).reshape(2, 2)  # rows = true class
    tp = counts.diagonal().astype(np.float64)  # per-class true positives
    support = counts.sum(axis=1).astype(np.float64)
    predicted = counts.sum(axis=0).astype(np.float64)
    denom = support + predicted
    # F1 = 2 TP / (2 TP + FP + FN); 0 when the class is neither present nor predicted
    # (sklearn's zero_division=0, which the original gets by default)
    f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        confusion = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    return {
        "acc": float(np.trace(counts) / n),
        "f1_neg": float(f1[0]),
        "f1_pos": float(f1[1]),
        "avgf1": float(np.mean(f1)),
        "wf1": float(np.sum(f1 * support) / n),
        "confusion": confusion,
        "confusion_counts": counts,
        "n": int(n),
        "prevalence": float(support[1] / n),
    }


def frame_metrics(
    labels: Any,
    logits: Any = None,
    probs: Any = None,
    preds: Any = None,
    mask: Any = None,
    compat: bool = False,
) -> Dict[str, Any]:
    """All frame-level metrics, frames pooled over every video (as the original does).

    labels: (n,) or (B, L) 0/1. logits: (..., 2) raw scores; or probs: (..., 2) or (n,)
    class-1 probabilities. preds: hard predictions; default argmax (ties -> class 0).
    mask: True = real frame; padded frames are dropped before anything is computed.

    Returns ``acc, f1_neg, f1_pos, avgf1, wf1, confusion`` (2x2 row-normalised, rows = true
    class), ``confusion_counts`` (2x2 int), ``ap_legacy``, ``ap``, ``auc``, ``n``,
    ``prevalence``. ``ap``/``auc`` are NaN when undefined (no positive / one class only, or
    no scores given); ``ap_legacy`` is NaN without a positive, and 0.0 without scores in
    compat mode (what the original reports when called without logits).
    """
    y = _labels(labels)
    n_all = y.shape[0]
    m = _mask(mask, n_all)
    p64, p_leg, pred = _scores_and_preds(n_all, logits, probs, preds, compat)
    y, p64, p_leg, pred = (_select(a, m) for a in (y, p64, p_leg, pred))
    if y.shape[0] == 0:
        raise ValueError("frame_metrics: no frames to score (empty input or empty mask)")
    out = _classification(y, pred)
    nan = float("nan")
    if p64 is not None:
        pos, neg = _split_sorted(y, p64)
        out["ap"], out["auc"] = _ap_auc_sorted(pos, neg)
    else:
        out["ap"] = out["auc"] = nan
    if p_leg is None:
        out["ap_legacy"] = 0.0 if compat else nan
    elif not compat:
        out["ap_legacy"] = _legacy_ap(pos, neg, int(y.sum()))
    else:
        pl = p_leg if p_leg.dtype.kind == "f" else p_leg.astype(np.float64)
        out["ap_legacy"] = _legacy_ap(_sorted_valid(pl[y == 1]), _sorted_valid(pl[y == 0]), int(y.sum()))
    return out


def _legacy_ap(pos: np.ndarray, neg: np.ndarray, n_pos: int) -> float:
    """``pos``/``neg``: ascending scores without NaN; ``n_pos``: every positive, NaN ones too
    (recall's denominator)."""
    if n_pos == 0:
        return float("nan")
    tp, fp, _ = _legacy_curve_sorted(pos, neg)
    _, recall, precision = _legacy_pr_from_counts(tp, fp, n_pos)
    return _legacy_ap_from_curve(recall, precision)


def to_original_keys(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """Rename to the keys the original writes in ``perf-*.yml`` (``perfs_frames``), with plain
    Python values (the confusion matrix as a nested list)."""
    out: Dict[str, Any] = {}
    for ours, theirs in ORIGINAL_KEYS.items():
        if ours in metrics:
            v = metrics[ours]
            out[theirs] = np.asarray(v, dtype=np.float64).tolist() if ours == "confusion" else float(v)
    return out


def from_original_keys(perfs: Mapping[str, Any]) -> Dict[str, Any]:
    """Read a ``perfs_frames`` dict from an original ``perf-*.yml`` back into our names."""
    back = {v: k for k, v in ORIGINAL_KEYS.items()}
    back["AP_POS"] = "ap_legacy"
    out: Dict[str, Any] = {}
    for k, v in perfs.items():
        if k in back:
            out[back[k]] = np.asarray(v, dtype=np.float64) if back[k] == "confusion" else float(v)
    return out


def bah_perfs(gt: Any, hard_preds: Any, logits: Any = None) -> Dict[str, Any]:
    """Drop-in for the original ``bah_metrics.bah_perfs`` (same keys, same numbers)."""
    m = frame_metrics(gt, logits=logits, preds=hard_preds, compat=True)
    out = to_original_keys(m)
    out["CONFUSION_MATRIX"] = m["confusion"]
    return out


# --------------------------------------------------------------------------- video level
@dataclass(frozen=True)
class VideoScores:
    """One row per video that has at least one (unmasked) frame."""

    video: np.ndarray  # video index (into labels_video)
    label: np.ndarray  # video label 0/1
    pred: np.ndarray  # aggregated hard prediction 0/1
    score: np.ndarray  # class-1 score used for AP / AUC (float64)
    n_frames: np.ndarray  # frames that went into each video's aggregate


@dataclass(frozen=True)
class VideoAggregation:
    name: str
    original_name: str  # the original's --case_best_model value
    description: str


VIDEO_AGGREGATIONS: Registry[VideoAggregation] = Registry("video aggregation")
for _agg in (
    VideoAggregation("vote", "FRAMES_VOTE", "majority vote of frame argmaxes; score = share of positive frames"),
    VideoAggregation("mean_prob", "FRAMES_AVG_PROBS", "argmax of the mean softmax; score = mean class-1 probability"),
    VideoAggregation("mean_logit", "FRAMES_AVG_LOGITS", "argmax of the mean logits; score = softmax of the mean logits"),
):
    VIDEO_AGGREGATIONS.register(_agg.name, _agg)


def video_labels_from_frames(video_idx: Any, frame_video_labels: Any) -> np.ndarray:
    """Per-video labels from a per-frame copy of the video label (the original's ``g_labels``).

    Raises when a video carries two different labels. Videos without frames get -1.
    """
    v = _video_idx(video_idx)
    g = _labels(frame_video_labels, "frame_video_labels")
    if g.shape[0] != v.shape[0]:
        raise ValueError(f"frame_video_labels: {g.shape[0]} values but video_idx has {v.shape[0]}")
    nv = int(v.max()) + 1 if v.size else 0
    count = np.bincount(v, minlength=nv)
    pos = np.bincount(v, weights=g, minlength=nv)
    mixed = (pos > 0) & (pos < count)
    if mixed.any():
        raise ValueError(f"video index {int(np.flatnonzero(mixed)[0])}: frames carry different video labels")
    out = np.where(count > 0, (pos > 0).astype(np.int64), -1)
    return out


def _video_idx(video_idx: Any) -> np.ndarray:
    v = _to_numpy(video_idx, "video_idx").reshape(-1)
    if v.dtype.kind not in "iu":
        if v.dtype.kind == "f" and np.array_equal(v, np.round(v)):
            v = v.astype(np.int64)
        else:
            raise ValueError(f"video_idx must be integer indices, got dtype {v.dtype}")
    v = v.astype(np.int64)
    if v.size and v.min() < 0:
        raise ValueError(f"video_idx: negative index {int(v.min())}")
    return v


class _PerVideo:
    """Frames grouped by video, with the per-video sums every aggregation shares (computed
    once, so three aggregations cost little more than one)."""

    def __init__(self, video_idx: Any, logits: Any, labels_video: Any, mask: Any = None):
        v = _video_idx(video_idx)
        n = v.shape[0]
        lg = _two_columns(logits, "logits", n)
        _check_finite(lg, "logits")
        self.labels_video = _labels(labels_video, "labels_video")
        m = _mask(mask, n)
        if m is not None:
            v, lg = v[m], lg[m]
        nv = self.labels_video.shape[0]
        if v.size and v.max() >= nv:
            raise ValueError(f"video_idx: index {int(v.max())} but labels_video has only {nv} videos")
        self.v, self.lg, self.nv = v, lg, nv
        self.count = np.bincount(v, minlength=nv)
        self.present = np.flatnonzero(self.count > 0)
        self.cnt = self.count[self.present].astype(np.float64)
        self._mean_probs: Optional[Tuple[np.ndarray, np.ndarray]] = None

    def mean(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.v, weights=values, minlength=self.nv)[self.present] / self.cnt

    def mean_probs(self) -> Tuple[np.ndarray, np.ndarray]:
        if self._mean_probs is None:
            p1 = _class1_prob(self.lg)
            p0 = _class1_prob(self.lg[:, ::-1])  # column 0 of the same softmax, bit for bit
            self._mean_probs = (self.mean(p0), self.mean(p1))
        return self._mean_probs

    def aggregate(self, how: str, compat: bool) -> VideoScores:
        lg = self.lg
        if how == "mean_logit":
            mean = np.stack([self.mean(lg[:, 0].astype(np.float64)), self.mean(lg[:, 1].astype(np.float64))], axis=1)
            pred = (mean[:, 1] > mean[:, 0]).astype(np.int64)
            score = _class1_prob(mean)
        elif how == "mean_prob":
            mean_p0, mean_p1 = self.mean_probs()
            pred = (mean_p1 > mean_p0).astype(np.int64)
            score = mean_p1
        elif how == "vote":
            frame_pred = lg[:, 1] > lg[:, 0]
            pos = np.bincount(self.v, weights=frame_pred, minlength=self.nv)[self.present]
            pred = (pos > self.cnt - pos).astype(np.int64)
            tie = pos == self.cnt - pos
            if tie.any():
                if compat:
                    _, first = np.unique(self.v, return_index=True)  # first frame of each present video
                    pred[tie] = frame_pred[first][tie]
                else:
                    mean_p0, mean_p1 = self.mean_probs()
                    pred[tie] = mean_p1[tie] > mean_p0[tie]
            score = pos / self.cnt
        else:
            raise KeyError(how)
        return VideoScores(video=self.present, label=self.labels_video[self.present], pred=pred,
                           score=score, n_frames=self.count[self.present])


def video_aggregate(
    video_idx: Any,
    logits: Any,
    labels_video: Any,
    how: str = "mean_prob",
    mask: Any = None,
    compat: bool = False,
) -> VideoScores:
    """Aggregate frame logits per video.

    video_idx: (n,) or (B, L) index of each frame's video into ``labels_video`` (V,), frames
    of a video in time order. how: a name in ``VIDEO_AGGREGATIONS`` (vote | mean_prob |
    mean_logit). Probabilities are the max-shifted float64 softmax in both modes.

    Vote ties (as many positive as negative frames): default -> the video's mean class-1
    probability decides (argmax of the mean softmax; exactly equal -> class 0). ``compat=True``
    -> the class of the video's first frame wins, which is what ``Counter.most_common`` does in
    the original's helper. Argmax ties always go to class 0.
    """
    VIDEO_AGGREGATIONS.get(how)  # clear error for unknown names
    return _PerVideo(video_idx, logits, labels_video, mask).aggregate(how, compat)


def video_metrics(
    video_idx: Any,
    logits: Any,
    labels_video: Any,
    mask: Any = None,
    hows: Iterable[str] = ("vote", "mean_prob", "mean_logit"),
    compat: bool = False,
) -> Dict[str, Dict[str, Any]]:
    """Frame outputs aggregated per video, then the frame metrics computed over videos.

    Returns ``{original name: metrics}``, e.g. ``{"FRAMES_VOTE": {...}, "FRAMES_AVG_PROBS":
    {...}, "FRAMES_AVG_LOGITS": {...}}``; each value has the keys of :func:`frame_metrics`.
    """
    hows = list(hows)
    for how in hows:
        VIDEO_AGGREGATIONS.get(how)
    grouped = _PerVideo(video_idx, logits, labels_video, mask)
    out: Dict[str, Dict[str, Any]] = {}
    for how in hows:
        vs = grouped.aggregate(how, compat)
        out[VIDEO_AGGREGATIONS.get(how).original_name] = frame_metrics(
            vs.label, probs=vs.score, preds=vs.pred, compat=compat
        )
    return out


def flatten_metrics(
    frame: Optional[Mapping[str, Any]] = None,
    video: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Dict[str, float]:
    """Flat scalar dict for logs / ``summary.csv`` / ``--eval-metric``:
    ``frame_<metric>`` and ``video_<how>_<metric>`` (how = vote | mean_prob | mean_logit)."""
    names = METRICS.list()
    flat: Dict[str, float] = {}
    if frame is not None:
        flat.update({f"frame_{k}": float(frame[k]) for k in names if k in frame})
    if video is not None:
        by_original = {a.original_name: a.name for a in (VIDEO_AGGREGATIONS.get(h) for h in VIDEO_AGGREGATIONS.list())}
        for agg, mets in video.items():
            short = by_original.get(agg, agg)
            flat.update({f"video_{short}_{k}": float(mets[k]) for k in names if k in mets})
    return flat


# --------------------------------------------------------------------------- original outputs
def perf_record(frame: Mapping[str, Any], dataset: str = "BAH_DB", split: str = "test") -> Dict[str, Any]:
    """The content of the original's ``perf-<split>.yml``: ``{dataset, split, perfs_frames}``,
    YAML-safe (write it with ``bah.core.files.write_yaml``)."""
    return {"dataset": dataset, "split": split, "perfs_frames": to_original_keys(frame)}


def predictions_to_arrays(predictions: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    """Flatten the original's ``prediction-<split>.pkl`` dict (video id -> ``labels`` (N,),
    ``logits`` (N, 2), ``g_labels`` (N,)) into frame arrays for the functions above.

    Returns ``video_ids`` (list, dict order), ``video_idx``, ``labels``, ``logits`` (the stored
    dtype kept, for compat), ``labels_video``. Errors name the video.
    """
    ids = list(predictions)
    if not ids:
        raise ValueError("predictions: no video")
    labels, logits, g_first, lengths = [], [], [], []
    for vid in ids:
        rec = predictions[vid]
        try:
            lab = _labels(rec["labels"], f"{vid}: labels")
            lg = _to_numpy(rec["logits"], f"{vid}: logits")
            g = _labels(rec["g_labels"], f"{vid}: g_labels") if "g_labels" in rec else None
        except KeyError as exc:
            raise ValueError(f"{vid}: prediction record has no {exc.args[0]!r}") from None
        if lg.ndim != 2 or lg.shape != (lab.shape[0], 2):
            raise ValueError(f"{vid}: logits shape {tuple(lg.shape)} does not match {lab.shape[0]} labels x 2 classes")
        if lab.shape[0] == 0:
            raise ValueError(f"{vid}: no frames")
        if g is None:  # the video label is the max of its frame labels in the original
            g_video = int(lab.max())
        else:
            if g.shape[0] != lab.shape[0] or (g != g[0]).any():
                raise ValueError(f"{vid}: g_labels must hold one video label per frame")
            g_video = int(g[0])
        labels.append(lab)
        logits.append(lg)
        g_first.append(g_video)
        lengths.append(lab.shape[0])
    dtype = np.result_type(*[a.dtype for a in logits])
    return {
        "video_ids": ids,
        "video_idx": np.repeat(np.arange(len(ids), dtype=np.int64), lengths),
        "labels": np.concatenate(labels),
        "logits": np.concatenate(logits).astype(dtype, copy=False),
        "labels_video": np.asarray(g_first, dtype=np.int64),
    }


def evaluate_predictions(predictions: Mapping[str, Mapping[str, Any]], compat: bool = False) -> Dict[str, Any]:
    """Frame and video metrics of an original ``prediction-<split>.pkl`` dict:
    ``{"frames": frame_metrics, "videos": video_metrics}``."""
    a = predictions_to_arrays(predictions)
    return {
        "frames": frame_metrics(a["labels"], logits=a["logits"], compat=compat),
        "videos": video_metrics(a["video_idx"], a["logits"].astype(np.float64), a["labels_video"], compat=compat),
    }


# --------------------------------------------------------------------------- participants
_PARTICIPANT_COLUMNS = ("acc", "f1_neg", "f1_pos", "avgf1", "wf1", "ap_legacy", "ap", "auc")
_SCORE_COLUMNS = ("ap_legacy", "ap", "auc")


def participant_breakdown(
    participant_ids: Any,
    labels: Any,
    logits: Any = None,
    probs: Any = None,
    preds: Any = None,
    mask: Any = None,
    compat: bool = False,
    ddof: int = 0,
):
    """Frame metrics per participant, and their mean +- std over participants.

    participant_ids: (n,) one id per frame (str or int). Returns ``(table, summary)``:
    ``table`` (pandas DataFrame, one row per participant, sorted by id) with columns
    ``n, n_pos, prevalence, single_class, acc, f1_neg, f1_pos, avgf1, wf1, ap_legacy, ap, auc``;
    ``summary`` (DataFrame indexed by metric) with ``mean, std, count, excluded``.

    A participant whose frames are all one class still has accuracy and F1 (AVGF1 with the
    absent class' F1 = 0, sklearn's zero_division=0), but its AP / legacy AP / AUC are NaN and
    are left out of those means (``excluded`` counts them). std uses ``ddof`` (0 = numpy's
    population std, the usual "mean +- std over subjects").
    """
    import pandas as pd

    y = _labels(labels)
    n = y.shape[0]
    pid = _to_numpy(participant_ids, "participant_ids").reshape(-1)
    if pid.shape[0] != n:
        raise ValueError(f"participant_ids: {pid.shape[0]} values but labels has {n} frames")
    m = _mask(mask, n)
    lg = _two_columns(logits, "logits", n) if logits is not None else None
    pr = _to_numpy(probs, "probs") if probs is not None else None
    if pr is not None:
        pr = pr.reshape(n, -1) if pr.size != n else pr.reshape(-1)
    pd_ = _labels(preds, "preds") if preds is not None else None
    if m is not None:
        y, pid = y[m], pid[m]
        lg = _select(lg, m)
        pr = _select(pr, m)
        pd_ = _select(pd_, m)
    if y.shape[0] == 0:
        raise ValueError("participant_breakdown: no frames (empty input or empty mask)")
    uniq, inv = np.unique(pid, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(inv, minlength=uniq.shape[0]))]
    rows = []
    for k, p in enumerate(uniq):
        idx = order[bounds[k]: bounds[k + 1]]
        yy = y[idx]
        met = frame_metrics(
            yy,
            logits=None if lg is None else lg[idx],
            probs=None if pr is None else pr[idx],
            preds=None if pd_ is None else pd_[idx],
            compat=compat,
        )
        n_pos = int(yy.sum())
        single = n_pos == 0 or n_pos == yy.shape[0]
        row = {"participant": p.item() if hasattr(p, "item") else p, "n": int(yy.shape[0]), "n_pos": n_pos,
               "prevalence": met["prevalence"], "single_class": bool(single)}
        for c in _PARTICIPANT_COLUMNS:
            row[c] = float("nan") if (single and c in _SCORE_COLUMNS) else met[c]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("participant")
    summary_rows = []
    for c in _PARTICIPANT_COLUMNS:
        col = table[c].to_numpy(dtype=np.float64)
        ok = col[~np.isnan(col)]
        summary_rows.append({
            "metric": c,
            "mean": float(ok.mean()) if ok.size else float("nan"),
            "std": float(ok.std(ddof=ddof)) if ok.size > ddof else float("nan"),
            "count": int(ok.size),
            "excluded": int(col.size - ok.size),
        })
    summary = pd.DataFrame(summary_rows).set_index("metric")
    return table, summary
