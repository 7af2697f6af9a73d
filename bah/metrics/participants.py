"""Frame metrics per participant and their mean +- std over participants."""
from __future__ import annotations

from typing import Any

import numpy as np

from bah.metrics.frame import frame_metrics
from bah.metrics.inputs import _labels, _mask, _select, _to_numpy, _two_columns


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
