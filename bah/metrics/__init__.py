"""Frame-, video- and participant-level metrics of A/H recognition, and the plots that draw them.

One noun per module: ``frame`` (frame-level metrics), ``curves`` (standard AP, ROC), ``legacy``
(the original's AP), ``video`` (video aggregations), ``participants`` (per-participant
breakdown), ``selection`` (which metrics can select a model and the one comparison of values),
``probabilities`` (softmax), ``inputs`` (argument checks). The public names are re-exported here.

The plots sit here, not in ``bah.report``, because the trainer's run folder draws its
learning curves and confusion matrices while training (train is below report)."""
from bah.metrics.curves import average_precision, binary_curve, precision_recall_curve, roc_auc, roc_curve
from bah.metrics.frame import ORIGINAL_KEYS, bah_perfs, frame_metrics, from_original_keys, perf_record, to_original_keys
from bah.metrics.legacy import LEGACY_THRESHOLDS, legacy_average_precision, legacy_pr_curve
from bah.metrics.participants import participant_breakdown
from bah.metrics.probabilities import legacy_softmax, softmax
from bah.metrics.selection import METRICS, MetricSpec, is_better, metric_spec
from bah.metrics.video import (
    DECISION_FILE,
    DECISION_NAME,
    VIDEO_AGGREGATIONS,
    VideoDecision,
    VideoAggregation,
    VideoScores,
    evaluate_predictions,
    fit_video_decision,
    threshold_curve,
    flatten_metrics,
    predictions_to_arrays,
    video_aggregate,
    video_labels_from_frames,
    video_metrics,
)

__all__ = [
    "METRICS", "MetricSpec", "VIDEO_AGGREGATIONS", "VideoAggregation", "VideoScores", "LEGACY_THRESHOLDS",
    "ORIGINAL_KEYS", "softmax", "legacy_softmax", "legacy_pr_curve", "legacy_average_precision", "binary_curve",
    "precision_recall_curve", "roc_curve", "average_precision", "roc_auc", "frame_metrics", "to_original_keys",
    "from_original_keys", "bah_perfs", "video_labels_from_frames", "video_aggregate", "video_metrics",
    "participant_breakdown", "perf_record", "predictions_to_arrays", "evaluate_predictions", "flatten_metrics",
    "metric_spec", "is_better", "VideoDecision", "fit_video_decision", "threshold_curve", "DECISION_NAME",
    "DECISION_FILE",
]
