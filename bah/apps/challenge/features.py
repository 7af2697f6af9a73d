"""The video-level feature contract read into one table: pooled vectors, window sequences,
window labels, video labels, participants and transcripts.

Contract (written by ``bah.stages.video_features``): for each extractor NAME and each video,
``<work>/video_features/<NAME>/<video_key>.npz`` with ``windows`` float32 (W, D),
``window_times`` float64 (W, 2) start/end seconds, ``video`` float32 (D,) and ``names`` (D,);
``meta.json`` next to them records ``window_s``, ``hop_s``, ``dim`` and ``names``.

Window labels come from the annotated A/H segments (``time_detailed_ah``) by an overlap rule;
video labels come from the split files. A video whose arrays are missing or malformed is named
in the failure list and left out; the others load.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bah.core.files import read_json
from bah.core.layout import transcript_path, video_features_dir, video_key
from bah.data import Release, participant_of, read_transcription

__all__ = [
    "WindowRule", "VideoTable", "LoadFailure", "window_labels", "merge_segments", "read_video_npz",
    "read_feature_meta", "load_video_table", "TEXT_SOURCES",
]

# Where the transcript text of a video comes from (the TF-IDF learner's input).
TEXT_SOURCES = ("split", "transcripts", "release", "none")
# Two modalities' windows are the same window when their starts agree this closely (seconds).
_TIME_TOL = 1e-3


@dataclass(frozen=True)
class WindowRule:
    """When a window counts as A/H: ``any`` overlap, or ``fraction`` >= ``min_fraction`` of its length."""

    mode: str = "fraction"
    min_fraction: float = 0.5

    def __post_init__(self):
        if self.mode not in ("any", "fraction"):
            raise ValueError(f"window overlap rule {self.mode!r}: use 'any' or 'fraction'")
        if self.mode == "fraction" and not 0.0 < self.min_fraction <= 1.0:
            raise ValueError(f"window overlap fraction {self.min_fraction} must lie in (0, 1]")


def merge_segments(segments: Sequence[Tuple[float, float]]) -> np.ndarray:
    """Sorted, non-overlapping (K, 2) segments: annotators' segments may overlap, and an
    overlap must not count twice toward a window's fraction."""
    if len(segments) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    seg = np.asarray(sorted((float(a), float(b)) for a, b in segments), dtype=np.float64)
    out = [seg[0].copy()]
    for a, b in seg[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append(np.array([a, b]))
    return np.stack(out)


def window_labels(window_times: np.ndarray, segments: Sequence[Tuple[float, float]], rule: WindowRule) -> np.ndarray:
    """(W,) float32 0/1: window w is positive when it overlaps the A/H segments by the rule.

    ``any``: an overlap of positive length (touching at one instant does not count);
    ``fraction``: overlap / window length >= ``min_fraction``.
    """
    t = np.asarray(window_times, dtype=np.float64).reshape(-1, 2)
    seg = merge_segments(segments)
    if t.shape[0] == 0 or seg.shape[0] == 0:
        return np.zeros(t.shape[0], dtype=np.float32)
    lo = np.maximum(t[:, None, 0], seg[None, :, 0])
    hi = np.minimum(t[:, None, 1], seg[None, :, 1])
    overlap = np.clip(hi - lo, 0.0, None).sum(axis=1)
    if rule.mode == "any":
        return (overlap > 0).astype(np.float32)
    length = np.maximum(t[:, 1] - t[:, 0], 1e-9)
    return (overlap / length >= rule.min_fraction - 1e-9).astype(np.float32)


@dataclass(frozen=True)
class LoadFailure:
    video_id: str
    reason: str


@dataclass(frozen=True)
class VideoTable:
    """Everything the learners see, one row per video (aligned arrays and tuples)."""

    ids: Tuple[str, ...]
    splits: np.ndarray  # (n,) str: train / val / test
    labels: np.ndarray  # (n,) int64; -1 = no label (an unlabelled test set)
    groups: np.ndarray  # (n,) str participant ids
    text: Tuple[str, ...]
    pooled: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (n, D) float32
    windows: Mapping[str, Tuple[np.ndarray, ...]] = field(default_factory=dict)  # name -> per video (W, D)
    window_times: Tuple[np.ndarray, ...] = ()  # per video (W, 2), shared by every modality
    window_labels: Tuple[Optional[np.ndarray], ...] = ()  # per video (W,) 0/1, None without an annotation
    feature_names: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def modalities(self) -> List[str]:
        return list(self.pooled)

    def rows(self, *splits: str) -> np.ndarray:
        return np.flatnonzero(np.isin(self.splits, list(splits)))

    def take(self, idx: Sequence[int]) -> "VideoTable":
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda seq: tuple(seq[i] for i in idx)  # noqa: E731
        return VideoTable(
            ids=pick(self.ids), splits=self.splits[idx], labels=self.labels[idx], groups=self.groups[idx],
            text=pick(self.text) if self.text else (),
            pooled={k: v[idx] for k, v in self.pooled.items()},
            windows={k: pick(v) for k, v in self.windows.items()},
            window_times=pick(self.window_times) if self.window_times else (),
            window_labels=pick(self.window_labels) if self.window_labels else (),
            feature_names=self.feature_names,
        )


def read_feature_meta(work: Path, name: str) -> Dict:
    path = video_features_dir(work, name) / "meta.json"
    return read_json(path, f"video feature {name!r}: no {path} (run the video-feature stage first)",
                     required=("window_s", "hop_s", "dim"))


def read_video_npz(path: Path, dim: int) -> Dict[str, np.ndarray]:
    """One video's arrays, checked against the contract; errors name the file and the array."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("windows", "window_times", "video") if k in z.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing") from None
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: unreadable npz ({exc})") from None
    for key in ("windows", "window_times", "video"):
        if key not in arrays:
            raise ValueError(f"{path}: no {key!r} array")
    win, times, vec = arrays["windows"], arrays["window_times"], arrays["video"]
    if vec.shape != (dim,):
        raise ValueError(f"{path}: 'video' has shape {vec.shape}, meta.json says dim {dim}")
    if win.ndim != 2 or win.shape[1] != dim:
        raise ValueError(f"{path}: 'windows' has shape {win.shape}, expected (W, {dim})")
    if times.shape != (win.shape[0], 2):
        raise ValueError(f"{path}: 'window_times' has shape {times.shape}, expected ({win.shape[0]}, 2)")
    for key, arr in (("windows", win), ("video", vec), ("window_times", times)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: {key!r} holds {int((~np.isfinite(arr)).sum())} non-finite values")
    return {"windows": win.astype(np.float32), "window_times": times.astype(np.float64),
            "video": vec.astype(np.float32)}


def _text(release: Release, work: Optional[Path], video_id: str, split_text: str, source: str) -> str:
    if source == "none":
        return ""
    if source == "split":
        return split_text
    if source == "transcripts":
        if work is None:
            raise ValueError("text source 'transcripts' needs the work folder (challenge.work)")
        path = transcript_path(work, video_id)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no transcript (run `bah transcribe`)")
        return read_transcription(path).text
    if source == "release":
        return release.transcription(video_id).text
    raise ValueError(f"unknown text source {source!r}; choose from {', '.join(TEXT_SOURCES)}")


def _align(video_id: str, per_modality: Dict[str, Dict[str, np.ndarray]]) -> Tuple[int, np.ndarray]:
    """Number of shared windows and their times. Extractors may stop one window apart at the
    end of a video; windows that start at different times are an error."""
    names = list(per_modality)
    n = min(per_modality[m]["window_times"].shape[0] for m in names)
    ref = per_modality[names[0]]["window_times"][:n]
    for m in names[1:]:
        other = per_modality[m]["window_times"][:n]
        if n and np.abs(other[:, 0] - ref[:, 0]).max() > _TIME_TOL:
            raise ValueError(f"video {video_id!r}: windows of {names[0]!r} and {m!r} start at different times "
                             f"(window_s / hop_s differ between the extractors?)")
    return n, ref


def load_video_table(
    release: Release,
    splits: Sequence[str],
    features: Sequence[str] = (),
    work: Optional[Path] = None,
    text_source: str = "split",
    rule: WindowRule = WindowRule(),
) -> Tuple[VideoTable, List[LoadFailure]]:
    """Read the split files, the features of ``features`` and the window labels.

    Returns the table of every video that loaded and the failures (one per video left out).
    """
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"unknown text source {text_source!r}; choose from {', '.join(TEXT_SOURCES)}")
    if features and work is None:
        raise ValueError("video features need the work folder holding video_features/ (challenge.work)")
    metas = {name: read_feature_meta(work, name) for name in features}
    entries = [(s, e) for s in splits for e in release.video_split(s)]
    annotations = {}
    if features and release.annotation_path is not None:
        annotations = release.annotations([e.video_id for _, e in entries])

    rows, failures = [], []
    for split, entry in entries:
        vid = entry.video_id
        try:
            per = {}
            for name in features:
                path = video_features_dir(work, name) / f"{video_key(vid)}.npz"
                per[name] = read_video_npz(path, int(metas[name]["dim"]))
            n_win, times = _align(vid, per) if per else (0, np.zeros((0, 2)))
            ann = annotations.get(vid)
            wl = None if ann is None else window_labels(times, ann.intervals_seconds, rule)
            text = _text(release, work, vid, entry.transcript, text_source)
            group = participant_of(vid)
        except (OSError, ValueError) as exc:
            failures.append(LoadFailure(vid, str(exc)))
            continue
        rows.append((split, entry, group, text, per, n_win, times, wl))

    if not rows:
        raise ValueError(f"no video could be loaded from splits {list(splits)}"
                         + (f"; first failure: {failures[0].video_id}: {failures[0].reason}" if failures else ""))
    return VideoTable(
        ids=tuple(r[1].video_id for r in rows),
        splits=np.array([r[0] for r in rows]),
        labels=np.array([-1 if r[1].label is None else r[1].label for r in rows], dtype=np.int64),
        groups=np.array([r[2] for r in rows]),
        text=tuple(r[3] for r in rows),
        pooled={m: np.stack([r[4][m]["video"] for r in rows]) for m in features},
        windows={m: tuple(r[4][m]["windows"][: r[5]] for r in rows) for m in features},
        window_times=tuple(r[6] for r in rows),
        window_labels=tuple(r[7] for r in rows),
        feature_names={m: tuple(str(x) for x in metas[m].get("names") or ()) for m in features},
    ), failures
