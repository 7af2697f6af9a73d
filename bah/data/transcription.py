"""Whisper transcription YAML: ``{text, chunks: [{language?, text, timestamp: (start, end)}]}``.

Known defects of the release files are repaired here so that every consumer sees one
increasing timeline in seconds:
- the last chunk's ``end`` may be ``None`` (Whisper did not close it);
- timestamps restart at about 0 every ~30 s window. A start that drops by more than 1 s
  below the time reached so far marks a restart; the time reached is added from there on;
- with the audio ``duration`` known, times outside the video (negative, past the end) are
  clipped to [0, duration] with a warning naming the file and the chunk (``clipped`` counts them).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from bah.data.annotations import load_yaml

__all__ = ["Chunk", "Transcription", "read_transcription", "parse_transcription", "repair_timeline", "clip_to_video",
           "RESTART_DROP_S"]

PathLike = Union[str, Path]

log = logging.getLogger(__name__)

# A drop larger than this (seconds) is a Whisper window restart, not timestamp jitter.
RESTART_DROP_S = 1.0


@dataclass(frozen=True)
class Chunk:
    text: str
    start: float  # seconds on the repaired timeline
    end: float
    language: Optional[str] = None


@dataclass(frozen=True)
class Transcription:
    text: str
    chunks: Tuple[Chunk, ...]
    restarts: int = 0  # how many timeline restarts were repaired
    clipped: int = 0  # how many chunks had a time outside [0, duration] (clipped)


def _num(value: Any, where: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: timestamp {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: timestamp {value!r} is not a number") from None


def repair_timeline(
    raw: Sequence[Tuple[float, Optional[float]]], duration: Optional[float] = None
) -> Tuple[List[Tuple[float, float]], int]:
    """Turn raw ``(start, end|None)`` pairs into one increasing timeline.

    Returns the repaired pairs and the number of restarts found. A missing ``end`` takes
    the next chunk's (repaired) start, for the last chunk ``duration`` when given, else its
    own start.
    """
    starts: List[float] = []
    ends: List[Optional[float]] = []
    offset = 0.0
    reached = 0.0
    restarts = 0
    for start, end in raw:
        if starts and start + offset < reached - RESTART_DROP_S:
            offset = reached
            restarts += 1
        s = start + offset
        e = None if end is None else end + offset
        starts.append(s)
        ends.append(e)
        reached = max(reached, s, e if e is not None else s)
    out: List[Tuple[float, float]] = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        if e is None:
            if i + 1 < len(starts):
                e = starts[i + 1]
            elif duration is not None:
                # the audio duration is on the real (repaired) timeline already
                e = float(duration)
            else:
                e = s
        out.append((s, max(s, e)))
    return out, restarts


def parse_transcription(data: Any, where: str = "transcription", duration: Optional[float] = None) -> Transcription:
    if data is None:
        return Transcription("", ())
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping with 'text' and 'chunks'")
    chunks_raw = data.get("chunks") or []
    if not isinstance(chunks_raw, (list, tuple)):
        raise ValueError(f"{where}: 'chunks' is not a list")
    pairs: List[Tuple[float, Optional[float]]] = []
    for k, ch in enumerate(chunks_raw):
        w = f"{where}: chunk {k}"
        if not isinstance(ch, dict):
            raise ValueError(f"{w}: not a mapping")
        ts = ch.get("timestamp")
        if not isinstance(ts, (list, tuple)) or len(ts) != 2:
            raise ValueError(f"{w}: timestamp {ts!r} is not a (start, end) pair")
        start = _num(ts[0], w)
        if start is None:
            raise ValueError(f"{w}: timestamp has no start")
        pairs.append((start, _num(ts[1], w)))
    times, restarts = repair_timeline(pairs, duration)
    times, clipped = clip_to_video(times, duration, where)
    chunks = tuple(
        Chunk(text=str(ch.get("text") or ""), start=s, end=e,
              language=None if ch.get("language") is None else str(ch.get("language")))
        for ch, (s, e) in zip(chunks_raw, times)
    )
    text = data.get("text")
    if text is None:
        text = "".join(c.text for c in chunks)
    return Transcription(str(text), chunks, restarts, clipped)


def clip_to_video(times: Sequence[Tuple[float, float]], duration: Optional[float],
                  where: str = "transcription") -> Tuple[List[Tuple[float, float]], int]:
    """Clip (start, end) pairs into [0, duration]; warns once per chunk moved. No duration: unchanged."""
    out: List[Tuple[float, float]] = []
    clipped = 0
    for k, (s, e) in enumerate(times):
        lo, hi = 0.0, float("inf") if duration is None else float(duration)
        cs, ce = min(max(s, lo), hi), min(max(e, lo), hi)
        if (cs, ce) != (s, e):
            clipped += 1
            log.warning("%s: chunk %d: timestamp (%.3f, %.3f) lies outside the video [0, %s]; clipped to "
                        "(%.3f, %.3f)", where, k, s, e, "?" if duration is None else f"{hi:.3f}", cs, ce)
        out.append((cs, ce))
    return out, clipped


def read_transcription(path: PathLike, duration: Optional[float] = None) -> Transcription:
    """Read one Whisper YAML; ``duration`` (seconds of audio) closes an open last chunk."""
    path = Path(path)
    return parse_transcription(load_yaml(path), str(path), duration)
