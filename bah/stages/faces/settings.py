"""The ``faces`` configuration section (read-only after parsing)."""
from __future__ import annotations

from dataclasses import dataclass

from bah.core.config import section


@section("faces")
@dataclass(frozen=True)
class FaceConfig:
    detector: str = "hog"          # DETECTORS entry: hog (fast, CPU) or cnn (dlib MMOD)
    size: int = 128                # output side S; 256 for byte-compatibility with the release
    detect_every: int = 5          # full-frame detection every k frames; landmarks track in between
    detect_downscale: float = 0.5  # the detector sees the frame scaled by this factor
    upsample: int = 0              # dlib pyramid upsampling for the detector (finds smaller faces, slower)
    min_score: float = 0.0         # detections scoring below this are ignored (dlib HOG default threshold)
    fill_policy: str = "backfill"  # FILL_POLICIES entry: backfill or compat
    compat_alignment: bool = False # use the original cp2tform estimator (template->landmarks, inverted)
    jpeg: bool = False             # also write cropped_aligned/<id>/frame-<k>.jpg
    jpeg_quality: int = 75         # the original's PIL default
    max_track_shift: float = 0.35  # tracking is lost when the face box moves more than this x its width
    max_track_scale: float = 0.3   # ... or changes size by more than this fraction between frames

    def __post_init__(self):
        if self.size < 16:
            raise ValueError(f"faces.size must be >= 16, got {self.size}")
        if self.detect_every < 1:
            raise ValueError(f"faces.detect_every must be >= 1, got {self.detect_every}")
        if not 0.05 <= self.detect_downscale <= 4.0:
            raise ValueError(f"faces.detect_downscale must be in [0.05, 4], got {self.detect_downscale}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"faces.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
