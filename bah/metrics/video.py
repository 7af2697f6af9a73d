"""Video-level metrics: frame outputs aggregated per video, then scored over videos.

Each aggregation is registered in ``VIDEO_AGGREGATIONS`` with the function that computes it
(hard prediction and class-1 score per video); :func:`video_aggregate` and
:func:`video_metrics` look the function up by name, nothing branches on names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

from bah.core.registry import Registry
from bah.metrics.frame import _classification, frame_metrics
from bah.metrics.inputs import _check_finite, _labels, _mask, _to_numpy, _two_columns
from bah.metrics.probabilities import _class1_prob
from bah.metrics.selection import METRICS


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
    """``fn(per_video, compat) -> (pred, score)``: hard prediction (0/1) and class-1 score of
    every video that has frames, in ``per_video.present`` order."""

    name: str
    original_name: str  # the original's --case_best_model value
    description: str
    fn: Callable[["_PerVideo", bool], Tuple[np.ndarray, np.ndarray]]


VIDEO_AGGREGATIONS: Registry[VideoAggregation] = Registry("video aggregation")


def _aggregation(name: str, original_name: str, description: str):
    def deco(fn):
        VIDEO_AGGREGATIONS.register(name, VideoAggregation(name, original_name, description, fn))
        return fn
    return deco


@_aggregation("vote", "FRAMES_VOTE", "majority vote of frame argmaxes; score = share of positive frames")
def _vote(g: "_PerVideo", compat: bool) -> Tuple[np.ndarray, np.ndarray]:
    frame_pred = g.lg[:, 1] > g.lg[:, 0]
    pos = np.bincount(g.v, weights=frame_pred, minlength=g.nv)[g.present]
    pred = (pos > g.cnt - pos).astype(np.int64)
    tie = pos == g.cnt - pos
    if tie.any():
        if compat:
            _, first = np.unique(g.v, return_index=True)  # first frame of each present video
            pred[tie] = frame_pred[first][tie]
        else:
            mean_p0, mean_p1 = g.mean_probs()
            pred[tie] = mean_p1[tie] > mean_p0[tie]
    return pred, pos / g.cnt


@_aggregation("mean_prob", "FRAMES_AVG_PROBS", "argmax of the mean softmax; score = mean class-1 probability")
def _mean_prob(g: "_PerVideo", compat: bool) -> Tuple[np.ndarray, np.ndarray]:
    mean_p0, mean_p1 = g.mean_probs()
    return (mean_p1 > mean_p0).astype(np.int64), mean_p1


@_aggregation("mean_logit", "FRAMES_AVG_LOGITS", "argmax of the mean logits; score = softmax of the mean logits")
def _mean_logit(g: "_PerVideo", compat: bool) -> Tuple[np.ndarray, np.ndarray]:
    mean = np.stack([g.mean(g.lg[:, 0].astype(np.float64)), g.mean(g.lg[:, 1].astype(np.float64))], axis=1)
    return (mean[:, 1] > mean[:, 0]).astype(np.int64), _class1_prob(mean)


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
        pred, score = VIDEO_AGGREGATIONS.get(how).fn(self, compat)
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
    VIDEO_AGGREGATIONS.get(how)  # clear error for unknown names before any work
    return _PerVideo(video_idx, logits, labels_video, mask).aggregate(how, compat)


def video_metrics(
    video_idx: Any,
    logits: Any,
    labels_video: Any,
    mask: Any = None,
    hows: Iterable[str] = ("vote", "mean_prob", "mean_logit"),
    compat: bool = False,
    decision: Optional["VideoDecision"] = None,
) -> Dict[str, Dict[str, Any]]:
    """Frame outputs aggregated per video, then the frame metrics computed over videos.

    Returns ``{original name: metrics}``, e.g. ``{"FRAMES_VOTE": {...}, "FRAMES_AVG_PROBS":
    {...}, "FRAMES_AVG_LOGITS": {...}}``; each value has the keys of :func:`frame_metrics`
    (hard decisions = the aggregation's argmax, the original's). With a ``decision``, the key
    ``DECISION_NAME`` holds the metrics of that stored rule (its aggregation's score against its
    threshold).
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
    if decision is not None:
        vs = grouped.aggregate(decision.aggregation, compat)
        out[DECISION_NAME] = frame_metrics(vs.label, probs=vs.score, preds=decision.decide(vs.score), compat=compat)
    return out


# --------------------------------------------------------------------------- the video decision
DECISION_NAME = "DECISION"  # key of the stored rule's metrics in video_metrics / flatten_metrics
DECISION_FILE = "video-decision.json"
THRESHOLD_METRICS = ("acc", "f1_neg", "f1_pos", "avgf1", "wf1")  # metrics that depend on the threshold


@dataclass(frozen=True)
class VideoDecision:
    """The video-level rule of a run: a video is A/H when the class-1 score of ``aggregation``
    (share of A/H frames for ``vote``, mean probability for ``mean_prob``, probability of the
    mean logits for ``mean_logit``) is ``>= threshold``. Fitted on validation by
    :func:`fit_video_decision`; ``value`` is ``metric`` on the fitting set at ``threshold``;
    ``plateau`` the [low, high] thresholds whose smoothed metric is near the best."""

    aggregation: str
    threshold: float
    metric: str = "avgf1"
    fitted_on: str = "val"
    value: float = float("nan")
    plateau: Tuple[float, float] = (float("nan"), float("nan"))
    n_videos: int = 0

    def decide(self, scores: Any) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float64) >= self.threshold).astype(np.int64)

    def rule_text(self) -> str:
        return f"{self.original_name} score >= {self.threshold:.4f}"

    @property
    def original_name(self) -> str:
        return VIDEO_AGGREGATIONS.get(self.aggregation).original_name

    def to_dict(self) -> Dict[str, Any]:
        return {"aggregation": self.aggregation, "case_best_model": self.original_name,
                "threshold": float(self.threshold), "metric": self.metric, "fitted_on": self.fitted_on,
                "value": float(self.value), "plateau": [float(x) for x in self.plateau],
                "n_videos": int(self.n_videos), "rule": "A/H when " + self.rule_text()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "video decision") -> "VideoDecision":
        try:
            agg, th = str(d["aggregation"]), float(d["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: not a video decision record ({exc!r})") from None
        if agg not in VIDEO_AGGREGATIONS:
            raise ValueError(f"{source}: unknown aggregation {agg!r}; known: {VIDEO_AGGREGATIONS.list()}")
        if not 0.0 <= th <= 1.0:
            raise ValueError(f"{source}: threshold {th} is not in [0, 1]")
        plateau = tuple(float(x) for x in d.get("plateau", (float("nan"), float("nan"))))
        return cls(agg, th, str(d.get("metric", "avgf1")), str(d.get("fitted_on", "val")),
                   float(d.get("value", float("nan"))), plateau, int(d.get("n_videos", 0)))


def threshold_curve(labels_video: Any, scores: Any, metric: str = "avgf1",
                    grid: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``metric`` of the decisions ``score >= t`` for every ``t`` of ``grid`` (default 0, 0.01, ..., 1)."""
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"video decision metric {metric!r} does not depend on a threshold; choose from "
                         f"{list(THRESHOLD_METRICS)}")
    y = _labels(labels_video, "labels_video")
    s = _to_numpy(scores, "scores").reshape(-1).astype(np.float64)
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"scores: {s.shape[0]} values but labels_video has {y.shape[0]} videos")
    _check_finite(s, "scores")
    grid = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=np.float64)
    values = np.array([_classification(y, (s >= t).astype(np.int64))[metric] for t in grid])
    return grid, values


def fit_video_decision(labels_video: Any, scores: Any, aggregation: str, metric: str = "avgf1",
                       smooth: int = 5, tolerance: float = 0.02, fitted_on: str = "val") -> VideoDecision:
    """Fit the video threshold on a (small) validation set, robustly.

    The metric is computed at the thresholds 0, 0.01, ..., 1; the curve is smoothed by a
    centred moving average over ``smooth`` points (edges repeated); the thresholds whose
    smoothed value is within ``tolerance`` of the smoothed maximum are "near-best"; the
    threshold is the centre of the widest contiguous run of near-best thresholds (ties: the
    lowest run). With a few dozen validation videos the raw argmax sits on the edge of a step
    of the curve, set by one or two videos; the centre of the widest plateau keeps a margin on
    both sides of it. ``value`` is the raw (unsmoothed) metric at the chosen threshold.
    """
    VIDEO_AGGREGATIONS.get(aggregation)
    grid, values = threshold_curve(labels_video, scores, metric)
    k = max(1, int(smooth)) | 1  # odd window, centred
    padded = np.pad(values, k // 2, mode="edge")
    smoothed = np.convolve(padded, np.ones(k) / k, mode="valid")
    near = smoothed >= smoothed.max() - tolerance
    edges = np.flatnonzero(np.diff(np.r_[0, near.astype(np.int8), 0]))
    starts, ends = edges[::2], edges[1::2] - 1  # inclusive runs of near-best thresholds
    widest = int(np.argmax(ends - starts))
    lo, hi = float(grid[starts[widest]]), float(grid[ends[widest]])
    threshold = round((lo + hi) / 2.0, 6)
    y = _labels(labels_video, "labels_video")
    s = _to_numpy(scores, "scores").reshape(-1).astype(np.float64)
    value = _classification(y, (s >= threshold).astype(np.int64))[metric]
    return VideoDecision(aggregation, threshold, metric, fitted_on, float(value), (lo, hi), int(y.shape[0]))


def flatten_metrics(
    frame: Optional[Mapping[str, Any]] = None,
    video: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Dict[str, float]:
    """Flat scalar dict for logs / ``summary.csv`` / ``--eval-metric``:
    ``frame_<metric>`` and ``video_<how>_<metric>`` (how = vote | mean_prob | mean_logit, or
    ``decision`` for the stored video decision)."""
    names = METRICS.list()
    flat: Dict[str, float] = {}
    if frame is not None:
        flat.update({f"frame_{k}": float(frame[k]) for k in names if k in frame})
    if video is not None:
        by_original = {a.original_name: a.name for a in (VIDEO_AGGREGATIONS.get(h) for h in VIDEO_AGGREGATIONS.list())}
        by_original[DECISION_NAME] = "decision"
        for agg, mets in video.items():
            short = by_original.get(agg, agg)
            flat.update({f"video_{short}_{k}": float(mets[k]) for k in names if k in mets})
    return flat


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
