"""The ``synth`` configuration section (``bah synth`` flags, ``--set synth.KEY=VALUE``, YAML ``synth:``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

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
    # --- what makes the set as hard as the real release (docs/synth.md "Hard cases"); all off by default
    fps_mix: Tuple[float, ...] = ()  # per-video frame rate drawn from these (29.97 means 30000/1001); () = fps
    seconds_jitter: float = 0.0  # lengths seconds * U(1 - j, 1 + j), at least 3 s
    long_videos: int = 0  # videos of long_seconds; the others shrink so the total duration stays
    long_seconds: float = 65.0
    vfr: float = 0.0  # fraction of videos with variable frame rate: dropped frames and timestamp jitter
    small_faces: float = 0.0  # fraction of videos whose face is 80-115 px tall (in a 480 px frame)
    rotated: int = 0  # videos stored sideways with rotation metadata (a phone held upright)
    silences: int = 0  # videos ending in a long silence (>= 3 s) while the face stays on screen
    no_frame_annotation: int = 0  # A/H videos whose annotation entry has intervals but no frame_annotation
    overruns: int = 0  # videos whose transcript timestamps start before 0 and end after the video

    def __post_init__(self):
        mix = self.fps_mix
        if isinstance(mix, str):
            mix = [x for x in mix.split(",") if x.strip()]
        object.__setattr__(self, "fps_mix", tuple(float(x) for x in (mix or ())))
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
            (all(f > 0 for f in self.fps_mix), "fps_mix values must be > 0"),
            (0.0 <= self.seconds_jitter < 1.0, "seconds_jitter must be in [0, 1)"),
            (self.long_seconds >= 1.0, "long_seconds must be >= 1.0"),
            (0.0 <= self.vfr <= 1.0 and 0.0 <= self.small_faces <= 1.0, "vfr and small_faces are fractions in [0, 1]"),
            (min(self.long_videos, self.rotated, self.silences, self.no_frame_annotation, self.overruns) >= 0,
             "long_videos, rotated, silences, no_frame_annotation and overruns are counts (>= 0)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
