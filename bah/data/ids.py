"""Video identifiers: participant id and question number parsed from the id itself.

A video id is the first field of a split line, ``Videos/<pid>/Visite_1/<file>.mp4``. File
names come in several spellings (``_`` or spaces as separators, an optional
``-DESKTOP-…`` device suffix), so the parser looks for the few anchors that every spelling
has instead of matching one fixed pattern. The original code never parsed the participant
(it used a running counter); participant-disjoint splits and per-participant work need the
real id.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Optional

__all__ = ["VideoName", "parse_video_id", "participant_of", "question_of"]

_PID = re.compile(r"^(\d+)")
_QUESTION = re.compile(r"Question[ _]+(\d+)", re.IGNORECASE)
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})[ _](\d{2}-\d{2}-\d{2})")
_SUFFIX = re.compile(r"Video(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class VideoName:
    """What a video id says about the recording."""

    video_id: str
    pid: str  # participant id as written (digits), kept a string: it is a key, not a number
    question: Optional[int]  # 1..7 in BAH; None when the name carries no ``Question`` part
    date: Optional[str]  # ``YYYY-MM-DD_HH-MM-SS`` (separator normalised to ``_``)
    suffix: str  # text after ``Video`` before the extension, e.g. ``-DESKTOP-NQ55E0P`` or ``""``


def parse_video_id(video_id: str) -> VideoName:
    """Parse ``Videos/<pid>/Visite_1/<file>.mp4`` (or a bare file name).

    The participant id is the leading digits of the file name, else the second path part.
    Raises ``ValueError`` naming the id when neither gives one.
    """
    if not isinstance(video_id, str) or not video_id.strip():
        raise ValueError(f"empty video id {video_id!r}")
    path = PurePosixPath(video_id.replace("\\", "/"))
    name = path.name
    stem = name[: -len(path.suffix)] if path.suffix else name
    m = _PID.match(name)
    pid = m.group(1) if m else None
    if pid is None and len(path.parts) >= 2 and path.parts[1].isdigit():
        pid = path.parts[1]
    if pid is None:
        raise ValueError(f"video id {video_id!r}: no participant id (file name does not start with digits "
                         f"and the second path part is not a number)")
    q = _QUESTION.search(stem)
    d = _DATE.search(stem)
    s = _SUFFIX.search(stem)
    return VideoName(
        video_id=video_id,
        pid=pid,
        question=int(q.group(1)) if q else None,
        date=f"{d.group(1)}_{d.group(2)}" if d else None,
        suffix=s.group(1) if s else "",
    )


def participant_of(video_id: str) -> str:
    return parse_video_id(video_id).pid


def question_of(video_id: str) -> Optional[int]:
    return parse_video_id(video_id).question
