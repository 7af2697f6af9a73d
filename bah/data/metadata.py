"""Participant metadata (``meta_data.yml``) and the video list ``bah-video.csv``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from bah.data.annotations import load_yaml

__all__ = ["read_metadata", "VideoLabel", "read_video_csv"]

PathLike = Union[str, Path]


def read_metadata(path: PathLike) -> Dict[str, Dict[str, Any]]:
    """``meta_data.yml`` -> participant id (always a string) -> metadata dict.

    YAML turns unquoted ids into ints; keys are normalised to strings so that they match
    the participant ids parsed from video ids.
    """
    path = Path(path)
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping participant id -> metadata")
    out: Dict[str, Dict[str, Any]] = {}
    for pid, meta in data.items():
        key = str(pid).strip()
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: participant {key!r}: metadata is not a mapping")
        if key in out:
            raise ValueError(f"{path}: participant {key!r} is listed twice")
        out[key] = {str(k): v for k, v in meta.items()}
    return out


@dataclass(frozen=True)
class VideoLabel:
    video_id: str
    label: Optional[int]
    lineno: int


def read_video_csv(path: PathLike) -> List[VideoLabel]:
    """``bah-video.csv`` (header ``video-path,label``) -> one entry per video."""
    path = Path(path)
    rows: List[VideoLabel] = []
    try:
        fh = open(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"video list not found: {path}") from None
    with fh:
        header = fh.readline().strip()
        if [h.strip() for h in header.split(",")] != ["video-path", "label"]:
            raise ValueError(f"{path}:1: expected the header 'video-path,label', found {header[:80]!r}")
        for lineno, line in enumerate(fh, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            vid, sep, lab = line.rpartition(",")
            where = f"{path}:{lineno}"
            if not sep or not vid.strip():
                raise ValueError(f"{where}: expected 'video-path,label'")
            lab = lab.strip()
            if lab == "":
                label = None
            else:
                try:
                    label = int(lab)
                except ValueError:
                    raise ValueError(f"{where}: label {lab!r} is not an integer") from None
            rows.append(VideoLabel(vid.strip(), label, lineno))
    return rows
