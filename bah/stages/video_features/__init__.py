"""Video-level features (per time window and per video) and the ``bah video-features`` stage.

Every extractor is an entry of ``VIDEO_EXTRACTORS``; component modules are imported here so
that importing the package fills the registry. Outputs follow one contract (docs/video-features.md):
``<out>/video_features/<name>/<key>.npz`` with ``windows`` (W, D) float32, ``window_times`` (W, 2)
float64, ``video`` (D,) float32 and ``names`` (D,), plus ``meta.json`` per extractor.
"""
from bah.stages.video_features.base import (
    VIDEO_EXTRACTORS, Clip, VideoExtractor, VideoFeatureConfig, window_times,
)

from bah.stages.video_features import encoder, face, lexical, prosody, text, timing  # noqa: E402,F401

__all__ = ["VIDEO_EXTRACTORS", "Clip", "VideoExtractor", "VideoFeatureConfig", "window_times"]
