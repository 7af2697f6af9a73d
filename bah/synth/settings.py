"""The ``synth`` configuration section (``bah synth`` flags, ``--set synth.KEY=VALUE``, YAML ``synth:``)."""
from __future__ import annotations

from dataclasses import dataclass

from bah.core.config import section


@section("synth")
@dataclass(frozen=True)
class SynthConfig:
    subjects: int = 12
    videos_per_subject: int = 3
    fps: float = 25.0
    seconds: float = 8.0
    seed: int = 0
    width: int = 640
    height: int = 480
    # Videos rendered in parallel; 0 = one per CPU core (at most 8). Output does not depend on it.
    workers: int = 0
    # Fraction of videos that contain A/H (the real release has about 55 %).
    positive_fraction: float = 0.5
    audio_rate: int = 16000
    crf: int = 23

    def __post_init__(self):
        checks = [
            (self.subjects >= 1, "subjects must be >= 1"),
            (self.videos_per_subject >= 1, "videos_per_subject must be >= 1"),
            (self.fps > 0, "fps must be > 0"),
            (self.seconds >= 1.0, "seconds must be >= 1.0 (room for speech and an A/H interval)"),
            (self.width >= 64 and self.height >= 64, "width and height must be >= 64"),
            (self.width % 2 == 0 and self.height % 2 == 0, "width and height must be even (yuv420p)"),
            (self.workers >= 0, "workers must be >= 0 (0: one per CPU core)"),
            (0.0 <= self.positive_fraction <= 1.0, "positive_fraction must be in [0, 1]"),
            (self.audio_rate in (16000, 22050, 44100, 48000), "audio_rate must be 16000, 22050, 44100 or 48000"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
