"""Frame-level metrics of binary A/H recognition, frames pooled over every video, and the
original's ``perf-*.yml`` record.

Everything is computed in float64 with numpy (torch tensors are accepted and copied to
numpy). Class 1 is "With A-H", class 0 "No A-H".

Two modes:

* default ("fixed"): probabilities come from a max-shifted float64 softmax, so they are never
  NaN for finite logits; non-finite logits are refused with an error.
* ``compat=True``: reproduces the original ``bah_metrics.bah_perfs`` number for number,
  including its unshifted softmax evaluated in the dtype the logits are stored in (float16
  under AMP), the resulting NaN probabilities (a NaN never passes a threshold, so such a
  frame counts as a negative prediction) and its home-made AP ("legacy AP", see
  :func:`bah.metrics.legacy.legacy_average_precision`).

All curves are sort-based: the scores of each class are sorted once and every count
"how many scores are >= t" is a ``searchsorted``; nothing loops over thresholds or frames.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from bah.metrics.curves import _ap_auc_sorted, _sorted_valid, _split_sorted
from bah.metrics.inputs import _check_finite, _labels, _mask, _select, _to_numpy, _two_columns
from bah.metrics.legacy import _legacy_ap
from bah.metrics.probabilities import _class1_prob, _legacy_class1_prob


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


def perf_record(frame: Mapping[str, Any], dataset: str = "BAH_DB", split: str = "test") -> Dict[str, Any]:
    """The content of the original's ``perf-<split>.yml``: ``{dataset, split, perfs_frames}``,
    YAML-safe (write it with ``bah.core.files.write_yaml``)."""
    return {"dataset": dataset, "split": split, "perfs_frames": to_original_keys(frame)}
