"""H.264/AAC mp4 writing with PyAV: yuv420p, audio cut to the video length.

Constant frame rate by default; given ``times`` each frame gets its own presentation time
on a 90 kHz clock (a variable-frame-rate file). ``rotation`` writes a display matrix.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable, Optional

import av
import numpy as np

from bah.core.files import atomic_path


VFR_CLOCK = 90000  # ticks per second of the presentation times of a VFR file (the mp4 video default)


def write_mp4(dest: os.PathLike, frames: Iterable[np.ndarray], n_frames: int, fps: float, audio: np.ndarray,
              audio_rate: int, width: int, height: int, crf: int = 23, preset: str = "veryfast", threads: int = 1,
              times: Optional[np.ndarray] = None, duration: Optional[float] = None, rotation: int = 0) -> None:
    """Encode ``n_frames`` RGB frames and mono float audio into ``dest`` (atomically).

    ``times`` (seconds, increasing): frame i is shown at times[i] instead of i/fps.
    ``duration`` (seconds) sets the audio length (default n_frames/fps). ``threads=1`` keeps
    x264 bit-exact across runs and machines; parallelism comes from encoding several videos at once.
    """
    rate = Fraction(fps).limit_denominator(1001)
    if duration is None:
        duration = n_frames / float(rate)
    n_audio = int(round(duration * audio_rate))
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        if times.shape != (n_frames,) or (np.diff(times) <= 0).any():
            raise ValueError(f"{dest}: need {n_frames} increasing frame times, got shape {times.shape}")
    audio = np.asarray(audio, dtype=np.float32)[:n_audio]
    if audio.size < n_audio:
        audio = np.pad(audio, (0, n_audio - audio.size))
    with atomic_path(dest, suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            vs = container.add_stream("libx264", rate=rate)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"preset": preset, "crf": str(crf), "threads": str(threads)}
            vs.thread_count = threads
            if times is not None:
                vs.codec_context.time_base = Fraction(1, VFR_CLOCK)
            if rotation:
                vs.set_display_rotation(rotation)
            aus = container.add_stream("aac", rate=audio_rate, layout="mono")
            aus.bit_rate = 64000
            a_pos = 0
            written = 0
            for i, rgb in enumerate(frames):
                if i >= n_frames:
                    break
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                if times is None:
                    frame.pts = i
                else:
                    frame.pts, frame.time_base = int(round(times[i] * VFR_CLOCK)), Fraction(1, VFR_CLOCK)
                for packet in vs.encode(frame):
                    container.mux(packet)
                written += 1
                # Interleave: audio up to the end of this video frame.
                nxt = (i + 1) / float(rate) if times is None or i + 1 >= n_frames else times[i + 1]
                a_end = n_audio if i == n_frames - 1 else min(n_audio, int(round(nxt * audio_rate)))
                if a_end > a_pos:
                    _encode_audio(container, aus, audio[a_pos:a_end], a_pos, audio_rate)
                    a_pos = a_end
            if written != n_frames:
                raise ValueError(f"{dest}: got {written} frames, expected {n_frames}")
            for packet in vs.encode(None):
                container.mux(packet)
            for packet in aus.encode(None):
                container.mux(packet)


def _encode_audio(container, stream, samples: np.ndarray, start: int, audio_rate: int) -> None:
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
    frame.sample_rate = audio_rate
    frame.pts = start
    for packet in stream.encode(frame):
        container.mux(packet)
