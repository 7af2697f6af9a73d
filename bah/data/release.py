"""``Release``: where everything of a BAH dataset folder is, whichever of the known trees it uses.

Accepted trees (first match wins):
- the EULA release: ``split/``, ``split-frames/``, ``transcription/``, ``video_annotation_transcript.yaml``;
- the original repository's fold folders: ``folds/BAH_DB/split-0/`` or ``folds/split-0/``;
- the split files directly in the root (what the original's feature stage reads).
Missing pieces are ``None``; only what a caller asks for has to exist.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Union

from bah.data.annotations import ANNOTATION_FILES, VideoAnnotation, read_annotations, read_class_ids
from bah.data.metadata import VideoLabel, read_metadata, read_video_csv
from bah.data.splits import SPLIT_NAMES, FrameLabels, SplitEntry, read_frame_split, read_video_split
from bah.data.transcription import Transcription, read_transcription

__all__ = ["Release", "SPLIT_DIRS"]

PathLike = Union[str, Path]

# Where video-level split files are looked for, relative to the root, in order.
SPLIT_DIRS = ("split", "folds/BAH_DB/split-0", "folds/split-0", ".")
DEFAULT_CLASS_IDS = {"With A-H": 1, "No A-H": 0}


class Release:
    """A dataset folder in the BAH release layout (see ``docs/data.md``)."""

    def __init__(self, root: PathLike):
        self.root = Path(root).expanduser().absolute()
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder does not exist: {self.root}")

    def __repr__(self) -> str:
        return f"Release({str(self.root)!r}, splits={list(self.split_files)})"

    # -- split files -------------------------------------------------------------------------
    @cached_property
    def split_dir(self) -> Optional[Path]:
        for rel in SPLIT_DIRS:
            d = self.root if rel == "." else self.root / rel
            if any((d / f"{s}.txt").is_file() for s in SPLIT_NAMES):
                return d
        return None

    @cached_property
    def split_files(self) -> Dict[str, Path]:
        """Split name -> video-level split file, for the splits present (train/val/test order)."""
        d = self.split_dir
        if d is None:
            return {}
        return {s: d / f"{s}.txt" for s in SPLIT_NAMES if (d / f"{s}.txt").is_file()}

    @property
    def splits(self) -> List[str]:
        return list(self.split_files)

    def split_path(self, split: str) -> Path:
        try:
            return self.split_files[split]
        except KeyError:
            where = self.split_dir or f"{self.root} (looked in {', '.join(SPLIT_DIRS)})"
            raise FileNotFoundError(f"no split file {split}.txt in {where}; present: {self.splits or 'none'}") from None

    def video_split(self, split: str) -> List[SplitEntry]:
        return read_video_split(self.split_path(split))

    def entries(self, splits: Optional[Sequence[str]] = None) -> Dict[str, List[SplitEntry]]:
        """Split name -> entries, for ``splits`` (default: every split present)."""
        names = self.splits if splits is None else list(splits)
        return {s: self.video_split(s) for s in names}

    @cached_property
    def frame_split_dir(self) -> Optional[Path]:
        d = self.root / "split-frames"
        return d if d.is_dir() else None

    def frame_split_path(self, split: str) -> Optional[Path]:
        if self.frame_split_dir is None:
            return None
        p = self.frame_split_dir / f"{split}.txt"
        return p if p.is_file() else None

    def frame_split_paths(self) -> Dict[str, Path]:
        """Split name -> frame-level split file, for the splits present."""
        out = {}
        for s in SPLIT_NAMES:
            p = self.frame_split_path(s)
            if p is not None:
                out[s] = p
        return out

    def frame_labels(self, split: str) -> FrameLabels:
        p = self.frame_split_path(split)
        if p is None:
            raise FileNotFoundError(f"no frame-level split file {split}.txt under {self.root / 'split-frames'}")
        return read_frame_split(p)

    # -- class ids, annotations ----------------------------------------------------------------
    @cached_property
    def class_ids_path(self) -> Optional[Path]:
        for d in (self.root, self.split_dir):
            if d is not None and (d / "class_id.yaml").is_file():
                return d / "class_id.yaml"
        return None

    def class_ids(self) -> Dict[str, int]:
        """The class name -> id map; the BAH default when the release has no ``class_id.yaml``."""
        p = self.class_ids_path
        return read_class_ids(p) if p is not None else dict(DEFAULT_CLASS_IDS)

    @cached_property
    def annotation_path(self) -> Optional[Path]:
        for name in ANNOTATION_FILES:
            if (self.root / name).is_file():
                return self.root / name
        return None

    def annotations(self, video_ids: Optional[Sequence[str]] = None) -> Dict[str, VideoAnnotation]:
        p = self.annotation_path
        if p is None:
            raise FileNotFoundError(f"no annotation file ({' or '.join(ANNOTATION_FILES)}) in {self.root}")
        return read_annotations(p, video_ids)

    # -- per video -------------------------------------------------------------------------------
    def video_path(self, video_id: str) -> Path:
        parts = PurePosixPath(video_id).parts
        if not parts or PurePosixPath(video_id).is_absolute() or ".." in parts:
            raise ValueError(f"unsafe video id {video_id!r}")
        return self.root / video_id

    def transcription_path(self, video_id: str) -> Optional[Path]:
        """``<root>/transcription/<video id>/<file stem>.yml`` (``.yaml`` accepted), or None."""
        folder = self.root / "transcription" / video_id
        stem = PurePosixPath(video_id).stem
        for ext in (".yml", ".yaml"):
            p = folder / f"{stem}{ext}"
            if p.is_file():
                return p
        return None

    def transcription(self, video_id: str, duration: Optional[float] = None) -> Transcription:
        p = self.transcription_path(video_id)
        if p is None:
            raise FileNotFoundError(f"no transcription for video {video_id!r} under {self.root / 'transcription'}")
        return read_transcription(p, duration)

    # -- participants, video list -------------------------------------------------------------
    @cached_property
    def metadata_path(self) -> Optional[Path]:
        for name in ("meta_data.yml", "meta_data.yaml"):
            if (self.root / name).is_file():
                return self.root / name
        return None

    def metadata(self) -> Dict[str, Dict]:
        if self.metadata_path is None:
            raise FileNotFoundError(f"no meta_data.yml in {self.root}")
        return read_metadata(self.metadata_path)

    @cached_property
    def video_csv_path(self) -> Optional[Path]:
        p = self.root / "bah-video.csv"
        return p if p.is_file() else None

    def video_list(self) -> List[VideoLabel]:
        if self.video_csv_path is None:
            raise FileNotFoundError(f"no bah-video.csv in {self.root}")
        return read_video_csv(self.video_csv_path)
