"""Clips of real synthesized speech (espeak-ng) for the speech and video-feature tests.

``clip([("say", "text"), ("pause", 0.4), ("filler", "Um")])`` returns 16 kHz samples and the
true (start, end) seconds of every spoken part, so tests know where the speech is.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from bah.synth.speech import speak

SR = 16000
VOICE = "en-us"


def clip(parts: Sequence[Tuple[str, object]]) -> Tuple[np.ndarray, List[Tuple[str, float, float]]]:
    pieces, spans, t = [], [], 0.0
    for kind, what in parts:
        if kind == "pause":
            wav = np.zeros(int(round(float(what) * SR)), np.float32)
        elif kind == "say":
            wav = speak(str(what), VOICE, 170, 50, SR)
        elif kind == "filler":  # slow and low, as the synthetic participants hesitate
            wav = speak(str(what), VOICE, 100, 26, SR)
        else:
            raise ValueError(kind)
        if kind != "pause":
            loud = np.flatnonzero(np.abs(wav) > 1e-3)
            spans.append((str(what), t + loud[0] / SR, t + (loud[-1] + 1) / SR))
        pieces.append(wav * 0.8)
        t += wav.size / SR
    return np.concatenate(pieces).astype(np.float32), spans


def write_video(path: Path, audio: Optional[np.ndarray], fps: int = 10, seconds: Optional[float] = None,
                size: int = 32) -> Path:
    """A small mp4: grey frames for the audio's length (or ``seconds``) and the audio as AAC."""
    from bah.core.media import write_video as encode

    dur = seconds if seconds is not None else audio.size / SR
    n = int(round(dur * fps))
    frames = (np.full((size, size, 3), (i * 7) % 255, np.uint8) for i in range(n))
    encode(path, frames, fps, audio=audio, audio_rate=SR, codec="mpeg4")
    return path

def manifest_row(video_id: str, path: Path, error: Optional[str] = None, transcript: str = "") -> dict:
    """A manifest row with the facts PyAV reports for ``path`` (or an error row)."""
    row = {"video_id": video_id, "split": "train", "participant": video_id.split("/")[1], "question": 1, "label": 0,
           "transcript": transcript, "path": str(path), "error": error}
    if error is None:
        from bah.core.media import probe

        info = probe(path)
        row.update(n_frames=info.n_frames, avg_fps=info.avg_fps, real_fps=info.real_fps, duration=info.duration,
                   has_audio=info.has_audio, audio_duration=info.audio_duration)
    return row


def content_words(text: str) -> List[str]:
    return [w for w in "".join(ch.lower() if ch.isalpha() or ch == "'" else " " for ch in text).split()]
