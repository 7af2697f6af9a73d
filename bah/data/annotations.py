"""``class_id.yaml`` and the per-video annotation YAML (``video_annotation_transcript.yaml``).

The annotation file is ~91 MB on the release, so it is read with libyaml's C loader when
PyYAML was built with it (about 10x faster than the pure-Python one). It may hold
``!!python/tuple`` tags (Whisper-era dumps), so a tuple constructor is registered on a
*safe* loader subclass instead of falling back to the unsafe loader.

``certainty_ah`` (the annotator's confidence per A/H segment) is dropped on purpose: it
exists only for segments that are A/H, so any model given it would read the label off it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np
import yaml

__all__ = [
    "ANNOTATION_FILES", "AnnotationLoader", "VideoAnnotation", "read_class_ids", "read_annotations",
    "parse_timestamp", "load_yaml",
]

PathLike = Union[str, Path]

# The release name first, then the name the original code reads.
ANNOTATION_FILES = ("video_annotation_transcript.yaml", "video_annotation.yaml")

# Fields never exposed: see the module docstring.
_DROPPED = frozenset({"certainty_ah"})

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AnnotationLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML loader that also understands ``!!python/tuple`` (built as a tuple)."""


def _construct_tuple(loader, node):
    return tuple(loader.construct_sequence(node, deep=True))


AnnotationLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)


def load_yaml(path: PathLike) -> Any:
    """Read one YAML file with ``AnnotationLoader``; errors name the file (and line, from PyYAML)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=AnnotationLoader)  # noqa: S506 - a safe loader subclass
    except FileNotFoundError:
        raise FileNotFoundError(f"YAML file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None


def read_class_ids(path: PathLike) -> Dict[str, int]:
    """``class_id.yaml`` -> ``{"With A-H": 1, "No A-H": 0}``; ids must be distinct integers."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a mapping 'class name: id'")
    out: Dict[str, int] = {}
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: class {name!r} has a non-integer id {value!r}")
        out[str(name)] = value
    if len(set(out.values())) != len(out):
        raise ValueError(f"{path}: class ids are not distinct: {out}")
    return out


_TS = re.compile(r"^\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*$")


def parse_timestamp(value: Any) -> float:
    """``'HH:MM:SS.mmm'`` (also ``MM:SS.mmm``, ``SS.mmm`` or a number) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"bad timestamp {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"bad timestamp {value!r}")
    m = _TS.match(value)
    if not m:
        raise ValueError(f"bad timestamp {value!r} (expected HH:MM:SS.mmm)")
    a, b, s = m.groups()
    if b is None:  # one colon: MM:SS
        h, mnt = 0, int(a) if a else 0
    else:
        h, mnt = int(a), int(b)
    return h * 3600.0 + mnt * 60.0 + float(s)


@dataclass(frozen=True)
class VideoAnnotation:
    """One video's annotation, without ``certainty_ah`` (it leaks the label)."""

    video_id: str
    global_label: Optional[int]
    frame_labels: np.ndarray = field(repr=False)  # (N,) uint8, ordered by the frame index in the path
    first_frame_index: Optional[int]  # 0 or 1: the index of the first listed frame (None: no frames)
    intervals_frames: Tuple[Tuple[int, int], ...]  # inclusive [start, end] frame indices
    intervals_seconds: Tuple[Tuple[float, float], ...]
    cues: Tuple[Dict[str, Any], ...]  # per segment: audio, body, facial, language, inconsistencies
    annotator: Optional[str]
    transcript: Optional[str]

    @property
    def n_frames(self) -> int:
        return int(self.frame_labels.shape[0])


_FRAME_IDX = re.compile(r"frame-(\d+)\.\w+$")


def _frame_labels(vid: str, items: Any, where: str) -> Tuple[np.ndarray, Optional[int]]:
    if items is None:
        return np.zeros(0, dtype=np.uint8), None
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{where}: video {vid!r}: frame_annotation is not a list")
    idx = np.empty(len(items), dtype=np.int64)
    lab = np.empty(len(items), dtype=np.uint8)
    for k, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) < 2:
            raise ValueError(f"{where}: video {vid!r}: frame_annotation[{k}] is not a [frame path, label] pair")
        m = _FRAME_IDX.search(str(item[0]))
        # The original uses only item[1] in list order; the index in the path orders it when present.
        idx[k] = int(m.group(1)) if m else k
        value = item[1]
        if isinstance(value, bool) or value not in (0, 1):
            raise ValueError(f"{where}: video {vid!r}: frame_annotation[{k}] label {value!r} is not 0 or 1")
        lab[k] = value
    if len(items) == 0:
        return lab, None
    order = np.argsort(idx, kind="stable")
    idx, lab = idx[order], lab[order]
    if np.any(np.diff(idx) != 1):
        raise ValueError(f"{where}: video {vid!r}: frame indices in frame_annotation are not consecutive "
                         f"(from {idx[0]} to {idx[-1]} with {len(idx)} entries)")
    return lab, int(idx[0])


def _intervals(vid: str, raw: Any, name: str, conv, where: str) -> Tuple[Tuple[Any, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}: video {vid!r}: {name} is not a list")
    out = []
    for k, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{where}: video {vid!r}: {name}[{k}] is not a [start, end] pair")
        try:
            a, b = conv(pair[0]), conv(pair[1])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: video {vid!r}: {name}[{k}]: {exc}") from None
        if b < a:
            raise ValueError(f"{where}: video {vid!r}: {name}[{k}] ends before it starts ({pair[0]!r} > {pair[1]!r})")
        out.append((a, b))
    return tuple(out)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not a frame index: {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    raise ValueError(f"not a frame index: {value!r}")


def parse_annotation(vid: str, raw: Mapping[str, Any], where: str = "annotation") -> VideoAnnotation:
    """Build a ``VideoAnnotation`` from one raw YAML value (``where`` names the source in errors)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: video {vid!r}: the value is not a mapping")
    raw = {k: v for k, v in raw.items() if k not in _DROPPED}
    g = raw.get("global_ah")
    if g is not None and (isinstance(g, bool) or g not in (0, 1)):
        raise ValueError(f"{where}: video {vid!r}: global_ah {g!r} is not 0 or 1")
    labels, first = _frame_labels(vid, raw.get("frame_annotation"), where)
    cues = raw.get("all_cues") or ()
    if not isinstance(cues, (list, tuple)):
        cues = (cues,)
    annotator = raw.get("annotator_id")
    transcript = raw.get("transcript")
    return VideoAnnotation(
        video_id=vid,
        global_label=None if g is None else int(g),
        frame_labels=labels,
        first_frame_index=first,
        intervals_frames=_intervals(vid, raw.get("fr_detailed_ah"), "fr_detailed_ah", _int, where),
        intervals_seconds=_intervals(vid, raw.get("time_detailed_ah"), "time_detailed_ah", parse_timestamp, where),
        cues=tuple(dict(c) if isinstance(c, Mapping) else {"value": c} for c in cues),
        annotator=None if annotator is None else str(annotator),
        transcript=None if transcript is None else str(transcript),
    )


def read_annotations(path: PathLike, video_ids: Optional[Iterable[str]] = None) -> Dict[str, VideoAnnotation]:
    """Read the annotation YAML; ``video_ids`` limits the (costly) conversion to those videos.

    Videos asked for but absent from the file are simply missing from the result.
    """
    path = Path(path)
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must map video id -> annotation")
    wanted = None if video_ids is None else set(video_ids)
    out: Dict[str, VideoAnnotation] = {}
    for vid, raw in data.items():
        vid = str(vid)
        if wanted is not None and vid not in wanted:
            continue
        out[vid] = parse_annotation(vid, raw, str(path))
    return out


def annotation_frame_counts(path: PathLike) -> Dict[str, int]:
    """Video id -> number of annotated frames, without building the label arrays (entries
    without ``frame_annotation`` are left out)."""
    path = Path(path)
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must map video id -> annotation")
    out = {}
    for vid, raw in data.items():
        items = raw.get("frame_annotation") if isinstance(raw, Mapping) else None
        if items is None and isinstance(raw, Mapping):
            continue  # an entry without frame labels lists no frames (bah labels uses its intervals)
        out[str(vid)] = len(items) if isinstance(items, (list, tuple)) else 0
    return out


# ``load_annotations`` is the spelling the stages use (bah.stages.labels); same function.
load_annotations = read_annotations

__all__ += ["parse_annotation", "annotation_frame_counts", "load_annotations"]
