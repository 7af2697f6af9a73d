"""The scalar metrics model selection and early stopping can track, and the one comparison
(:func:`is_better`) that decides whether a value improves on the best so far."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from bah.core.registry import Registry


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
    # computed by the trainer's evaluation pass (bah.train.engine.score), not by frame_metrics
    MetricSpec("loss", False, None, "validation loss: mean frame cross-entropy of the evaluation pass (lower is better)"),
):
    METRICS.register(_spec.name, _spec)


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
