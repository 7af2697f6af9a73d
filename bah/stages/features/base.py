"""What every feature extractor shares: the per-video input and the extractor interface.

An extractor turns one video into an (N, D) float32 array, N being the manifest's frame
count. Models are loaded once per extractor object, so a stage builds each extractor once
and calls ``extract`` for every video of its block.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from bah.core.media import UNREAD, LazyAudio
from bah.core.registry import Registry
from bah.stages.features.settings import FeatureConfig

log = logging.getLogger(__name__)



@dataclass
class VideoInput(LazyAudio):
    """One video as the extractors see it. ``out_dir`` holds its arrays (``video.npy``,
    ``face_record.npz``); the audio track is decoded at most once, on first use.

    ``times`` holds each frame's time in seconds (the manifest's record, see
    ``bah.core.media.frame_times``); given none, frame i is at i/fps (constant frame rate).
    """

    video_id: str
    path: Optional[Path]
    n_frames: int
    fps: float
    out_dir: Path
    transcript: str = ""
    transcription_path: Optional[Path] = None
    duration: Optional[float] = None
    times: Optional[np.ndarray] = field(default=None, repr=False)
    warnings: List[str] = field(default_factory=list)
    _audio: Any = field(default=UNREAD, repr=False)

    def __post_init__(self) -> None:
        if self.n_frames is None or int(self.n_frames) < 1:
            raise ValueError(f"{self.video_id}: frame count must be >= 1, got {self.n_frames}")
        if not self.fps or not np.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"{self.video_id}: invalid frame rate {self.fps!r}")
        self.n_frames = int(self.n_frames)
        self.fps = float(self.fps)
        if self.times is None:
            from bah.core.media import frame_times

            self.times = frame_times(self.n_frames, self.fps, where=self.video_id)
        self.times = np.asarray(self.times, dtype=np.float64)
        if self.times.shape != (self.n_frames,):
            raise ValueError(f"{self.video_id}: {self.times.shape[0]} frame times for {self.n_frames} frames")



def zeros_with_warning(video: VideoInput, extractor: str, reason: str, dim: int) -> np.ndarray:
    msg = f"{extractor}: {reason}; writing zeros"
    video.warnings.append(msg)
    log.warning("%s: %s", video.video_id, msg)
    return np.zeros((video.n_frames, dim), np.float32)


class Extractor:
    """Base of every registered extractor.

    ``stem`` is the output file name (``<stem>.npy``), which is the modality name training
    uses; ``modality`` groups extractors (audio, text, vision) for documentation and meta.
    ``settings`` is the stage's frozen ``FeatureConfig`` (defaults when omitted).
    """

    name: str = ""
    stem: str = ""
    result_keys: Tuple[str, ...] = ()  # FeatureConfig fields that change this extractor's output
    modality: str = ""

    def __init__(self, settings: Any = None):
        self.settings = FeatureConfig() if settings is None else settings
        self._dim: Optional[int] = None

    @classmethod
    def available(cls) -> Optional[str]:
        """None when usable here, else the reason (a missing optional package)."""
        return None

    def dim(self) -> int:
        raise NotImplementedError

    def extract(self, video: VideoInput) -> np.ndarray:
        raise NotImplementedError

    def meta(self) -> Dict[str, Any]:
        return {"name": self.name, "stem": self.stem, "modality": self.modality, "dim": self.dim()}

    def check(self, video: VideoInput, arr: np.ndarray) -> np.ndarray:
        """The contract of every output: (N, D) float32, finite."""
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != video.n_frames:
            raise ValueError(
                f"{video.video_id}: {self.name} produced shape {arr.shape}, expected ({video.n_frames}, D)"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"{video.video_id}: {self.name} produced non-finite values")
        return arr


class _ExtractorRegistry(Registry):
    """Registers the class under ``name`` and records that name on the class."""

    def register(self, name, obj=None):
        inner = super().register(name)

        def deco(cls):
            cls.name = name
            cls.stem = cls.stem or name
            return inner(cls)

        return deco(obj) if obj is not None else deco


EXTRACTORS: Registry = _ExtractorRegistry("feature extractor", Extractor)


def resolve_device(device: str) -> str:
    """'auto' picks CUDA when present; anything else is passed to torch as given."""
    if device in ("", "auto", None):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
