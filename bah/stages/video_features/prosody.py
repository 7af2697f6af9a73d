"""``prosody``: the 88 eGeMAPSv02 functionals of openSMILE per window and over the whole video.

The functionals are computed by openSMILE on each window's audio (not an average of
frame-level descriptors), so pitch/loudness percentiles, rising/falling slopes, voiced and
unvoiced segment lengths and rates are the real per-segment statistics.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from bah.stages.video_features.base import VIDEO_EXTRACTORS, Clip, VideoExtractor

SAMPLE_RATE = 16000
MIN_SAMPLES = SAMPLE_RATE // 10  # openSMILE needs some frames; shorter windows are padded with silence


@VIDEO_EXTRACTORS.register("prosody")
class ProsodyExtractor(VideoExtractor):
    modality = "audio"

    def __init__(self, settings=None):
        super().__init__(settings)
        self._smile = None
        self._names: Optional[List[str]] = None

    @classmethod
    def available(cls) -> Optional[str]:
        import importlib.util

        return None if importlib.util.find_spec("opensmile") else "the optional package 'opensmile' is not installed"

    def smile(self):
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.Functionals)
            self._names = list(self._smile.feature_names)
        return self._smile

    def names(self) -> List[str]:
        self.smile()
        return list(self._names)

    def functionals(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, dtype=np.float32)
        if x.size < MIN_SAMPLES:
            x = np.concatenate([x, np.zeros(MIN_SAMPLES - x.size, np.float32)])
        df = self.smile().process_signal(x, SAMPLE_RATE)
        # silence gives undefined statistics for some functionals: they are 0 (nothing voiced)
        return np.nan_to_num(df.to_numpy(dtype=np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)

    def extract(self, clip: Clip, times: np.ndarray):
        d = len(self.names())
        audio = clip.audio()
        if audio is None or audio.size == 0:
            clip.warnings.append("prosody: no audio track; zeros")
            return np.zeros((times.shape[0], d)), np.zeros(d)
        win = np.stack([self.functionals(audio[int(round(s * SAMPLE_RATE)):int(round(e * SAMPLE_RATE))])
                        for s, e in times])
        return win, self.functionals(audio)
