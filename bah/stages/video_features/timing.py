"""``timing``: when the speaker talks, pauses, and says what the recogniser leaves out.

Inputs: Silero VAD speech segments of the audio and the recognised words with Whisper's word
times. Per window (and over the whole video):

- ``speech_ratio``: VAD speech seconds / window seconds;
- ``erased_s``, ``erased_ratio``: seconds of VAD speech the recogniser left without words
  (Whisper drops a spoken "um" but its time stays: the gap is the filled pause): whole speech
  segments holding no word, plus uncovered stretches of at least ``erased_min_s`` inside the
  others (see :func:`erased_spans`); and that time / speech seconds;
- ``pause_count``, ``pause_mean_s``, ``pause_max_s``, ``pause_ratio``: silences of at least
  ``pause_min_s`` between two VAD speech segments (leading/trailing silence of the video is not
  a pause), clipped to the window;
- ``speech_rate_wps``: words (by their mid time) per second of VAD speech;
- ``word_count``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from bah.stages.video_features.base import (
    VIDEO_EXTRACTORS, Clip, VideoExtractor, overlap, per_window, subtract, union,
)

NAMES = ("speech_ratio", "erased_s", "erased_ratio", "pause_count", "pause_mean_s", "pause_max_s", "pause_ratio",
         "speech_rate_wps", "word_count")


def pauses_between(speech: np.ndarray, min_s: float) -> np.ndarray:
    """Silences between consecutive speech segments, at least ``min_s`` long."""
    sp = union(speech)
    if sp.shape[0] < 2:
        return np.zeros((0, 2))
    gaps = np.stack([sp[:-1, 1], sp[1:, 0]], axis=1)
    return gaps[gaps[:, 1] - gaps[:, 0] >= min_s]


def erased_spans(speech: np.ndarray, words: np.ndarray, min_s: float) -> np.ndarray:
    """Speech the recogniser left without words.

    A VAD speech segment holding no word (by the word's mid time) is erased whole: a filler
    said between pauses, dropped by Whisper. Inside a segment with words, only uncovered
    stretches of at least ``min_s`` count, because Whisper's word times are coarse (the first
    word after a pause often starts 0.2-0.4 s late) and would otherwise look like erased speech.
    """
    words = np.asarray(words, dtype=np.float64).reshape(-1, 2)
    mid = words.mean(axis=1)
    out = []
    for s, e in union(speech):
        if not ((mid >= s) & (mid < e)).any():
            out.append((s, e))
            continue
        gaps = subtract(np.array([[s, e]]), words)
        out.extend(tuple(g) for g in gaps if g[1] - g[0] >= min_s)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def timing_vector(speech: np.ndarray, erased: np.ndarray, pauses: np.ndarray, word_mid: np.ndarray,
                  s: float, e: float) -> List[float]:
    span = max(e - s, 1e-9)
    sp = float(overlap(speech, s, e).sum())
    er = float(overlap(erased, s, e).sum())
    p = overlap(pauses, s, e)
    p = p[p > 0]
    n_words = int(((word_mid >= s) & (word_mid < e)).sum()) if word_mid.size else 0
    return [sp / span, er, er / sp if sp > 0 else 0.0, float(p.size), float(p.mean()) if p.size else 0.0,
            float(p.max()) if p.size else 0.0, float(p.sum()) / span, n_words / sp if sp >= 0.1 else 0.0,
            float(n_words)]


@VIDEO_EXTRACTORS.register("timing")
class TimingExtractor(VideoExtractor):
    modality = "speech"
    result_keys = ("vad_threshold", "erased_min_s", "pause_min_s")

    def __init__(self, settings=None, vad=None):
        super().__init__(settings)
        self._vad = vad

    @classmethod
    def available(cls) -> Optional[str]:
        from bah.stages.speech import vad

        return vad.unavailable()

    def names(self):
        return list(NAMES)

    def vad(self):
        if self._vad is None:
            from bah.stages.speech.vad import SileroVad

            self._vad = SileroVad()
        return self._vad

    def spans(self, clip: Clip) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(speech, erased, pauses, word mid times) of the clip."""
        from bah.stages.speech.asr import word_spans
        from bah.stages.speech.vad import VadSettings

        audio = clip.audio()
        if audio is None or audio.size == 0:
            clip.warnings.append("timing: no audio track; no speech")
            speech = np.zeros((0, 2))
        else:
            speech = np.asarray(self.vad().segments(audio, VadSettings(threshold=self.settings.vad_threshold)))
            speech = speech.reshape(-1, 2)
        words = word_spans(clip.asr_words())
        erased = erased_spans(speech, words, self.settings.erased_min_s)
        pauses = pauses_between(speech, self.settings.pause_min_s)
        return speech, erased, pauses, words.mean(axis=1) if words.size else np.zeros(0)

    def extract(self, clip: Clip, times: np.ndarray):
        speech, erased, pauses, mid = self.spans(clip)
        win = per_window(times, lambda s, e: timing_vector(speech, erased, pauses, mid, s, e))
        vid = np.asarray(timing_vector(speech, erased, pauses, mid, 0.0, clip.duration))
        return win.reshape(times.shape[0], len(NAMES)), vid
