"""Split files: video level (``id,label,transcript``) and frame level (``<id>/frame-<i>.jpg,<label>``).

Video-level lines are split on the first two commas only: ids never contain a comma but
transcripts often do, and the original (``line.replace(f"{id},{label},", "")``) does the
same. Files are read as UTF-8 whatever the platform default (some transcripts have accents).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

import numpy as np

__all__ = [
    "SPLIT_NAMES", "SplitEntry", "FrameLabels", "read_video_split", "read_frame_split", "format_video_split_line",
    "load_video_split", "load_frame_split",
]

PathLike = Union[str, Path]

# The order in which splits are reported; a release may lack any of them (e.g. no test labels).
SPLIT_NAMES = ("train", "val", "test")

_FRAME = re.compile(r"^(?P<vid>.+)/frame-(?P<idx>\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class SplitEntry:
    video_id: str
    label: Optional[int]  # None: no label (the challenge's private test set)
    transcript: str
    lineno: int


def _lines(path: Path):
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                yield lineno, line.rstrip("\r\n").lstrip("\ufeff") if lineno == 1 else line.rstrip("\r\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"split file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None


def _label(text: str, where: str) -> Optional[int]:
    text = text.strip()
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{where}: label {text!r} is not an integer") from None
    if value not in (0, 1):
        raise ValueError(f"{where}: label {value} is not 0 or 1")
    return value


def read_video_split(path: PathLike) -> List[SplitEntry]:
    """Parse a video-level split file; blank lines are skipped, duplicates are an error."""
    path = Path(path)
    entries: List[SplitEntry] = []
    seen: Dict[str, int] = {}
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        if "," not in line:
            raise ValueError(f"{where}: expected 'id,label,transcript', found no comma: {line[:80]!r}")
        parts = line.split(",", 2)
        video_id = parts[0].strip()
        if not video_id:
            raise ValueError(f"{where}: empty video id")
        label = _label(parts[1], where)
        transcript = parts[2].strip() if len(parts) > 2 else ""
        if video_id in seen:
            raise ValueError(f"{where}: video {video_id!r} already listed on line {seen[video_id]}")
        seen[video_id] = lineno
        entries.append(SplitEntry(video_id, label, transcript, lineno))
    return entries


def format_video_split_line(video_id: str, label: Optional[int], transcript: str) -> str:
    """One line of a video-level split file (the inverse of ``read_video_split``)."""
    if "," in video_id or "\n" in video_id:
        raise ValueError(f"video id {video_id!r} cannot be written to a split file (comma or newline)")
    text = " ".join(transcript.split())  # a newline inside the transcript would start a new entry
    return f"{video_id},{'' if label is None else int(label)},{text}"


@dataclass(frozen=True)
class FrameLabels:
    """Per-video frame labels from a frame-level split file."""

    labels: Dict[str, np.ndarray]  # video id -> (N,) uint8, ordered by frame index
    first_index: Dict[str, int]  # video id -> index of its first frame (0 in the release; 1 seen in some listings)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, video_id: str) -> np.ndarray:
        return self.labels[video_id]

    def __contains__(self, video_id: object) -> bool:
        return video_id in self.labels

    def __iter__(self):
        return iter(self.labels)

    def items(self):
        return self.labels.items()

    def keys(self):
        return self.labels.keys()

    def values(self):
        return self.labels.values()

    def get(self, video_id: str, default=None):
        return self.labels.get(video_id, default)


def read_frame_split(path: PathLike) -> FrameLabels:
    """Parse ``<video id>/frame-<i>.jpg,<0|1>`` lines into one label array per video.

    Frames may be listed in any order. A gap or a duplicate in a video's indices is an
    error naming the video, since the labels would no longer line up with decoded frames.
    """
    path = Path(path)
    per_video: Dict[str, Dict[int, int]] = defaultdict(dict)
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        frame_path, sep, label_text = line.rpartition(",")
        if not sep:
            raise ValueError(f"{where}: expected '<video id>/frame-<i>.jpg,<label>', found no comma")
        m = _FRAME.match(frame_path.strip())
        if not m:
            raise ValueError(f"{where}: {frame_path[:120]!r} is not '<video id>/frame-<i>.jpg'")
        label = _label(label_text, where)
        if label is None:
            raise ValueError(f"{where}: missing frame label")
        vid, idx = m.group("vid"), int(m.group("idx"))
        if idx in per_video[vid]:
            raise ValueError(f"{where}: frame {idx} of video {vid!r} is listed twice")
        per_video[vid][idx] = label
    labels: Dict[str, np.ndarray] = {}
    first: Dict[str, int] = {}
    for vid, frames in per_video.items():
        idx = np.fromiter(sorted(frames), dtype=np.int64, count=len(frames))
        start = int(idx[0])
        expected = np.arange(start, start + len(idx))
        if not np.array_equal(idx, expected):
            missing = sorted(set(range(start, int(idx[-1]) + 1)) - set(frames))
            raise ValueError(f"{path}: video {vid!r}: frame indices have gaps (missing {_short(missing)})")
        labels[vid] = np.fromiter((frames[i] for i in idx), dtype=np.uint8, count=len(idx))
        first[vid] = start
    return FrameLabels(labels, first)


# ``load_*`` spellings used by the stages (bah.stages.labels); same functions.
load_video_split = read_video_split
load_frame_split = read_frame_split


def _short(items: Iterable[int], limit: int = 8) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")
