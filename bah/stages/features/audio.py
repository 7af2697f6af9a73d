"""Audio features per video frame: the VGGish log-mel front end, ``logmel`` and openSMILE.

The front end reproduces TF VGGish ``mel_features`` plus the original's custom example
framing (original-preprocessing.md §5.6) in float64, vectorised: one STFT matrix product
and one gather for all examples, never a Python loop per example.
"""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import numpy as np

from bah.stages.features.base import EXTRACTORS, Extractor, VideoInput, zeros_with_warning

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512
MEL_BANDS = 64
MEL_LOW, MEL_HIGH = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_ROWS = 96  # 0.96 s of 10 ms log-mel rows
TAIL_PAD = SAMPLE_RATE  # the original appends 1 s repeating the last sample
LOGMEL_RATE = 1.0 / 0.01  # log-mel rows per second, as the original computes it
SILENCE = 1e-6  # peak amplitude under which a track counts as silent
SNAP_S = 0.0006  # frame times this close to the grid i/fps are on it (ms container clocks round by 0.5 ms)


def _hertz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + hz / 700.0)


def mel_matrix(n_bins: int = FFT // 2 + 1) -> np.ndarray:
    """(n_bins, 64) HTK-mel triangular weights, DC bin zeroed (TF VGGish)."""
    bins_mel = _hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2.0, n_bins))
    edges = np.linspace(_hertz_to_mel(np.float64(MEL_LOW)), _hertz_to_mel(np.float64(MEL_HIGH)), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    lo = (bins_mel[:, None] - lower) / (centre - lower)
    hi = (upper - bins_mel[:, None]) / (upper - centre)
    m = np.maximum(0.0, np.minimum(lo, hi))
    m[0, :] = 0.0
    return m


_MEL = mel_matrix()
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi / WINDOW * np.arange(WINDOW))  # periodic Hann


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(L, 64) float64 log-mel of a 16 kHz mono float signal (no padding added here)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size < WINDOW:
        x = np.pad(x, (0, WINDOW - x.size), mode="edge" if x.size else "constant")
    n = 1 + (x.size - WINDOW) // HOP
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n, WINDOW), strides=(x.strides[0] * HOP, x.strides[0]), writeable=False
    )
    spec = np.abs(np.fft.rfft(frames * _HANN, FFT))
    return np.log(spec @ _MEL + LOG_OFFSET)


def pad_waveform(samples: np.ndarray, head: int = 0, tail: int = TAIL_PAD) -> np.ndarray:
    """Edge-pad a float signal (the original: ``tail`` = 1 s at the end only)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return np.zeros(head + tail, dtype=np.float64)
    return np.pad(x, (head, tail), mode="edge")


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    return np.asarray(samples, dtype=np.float64) / 32768.0


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """What ffmpeg writes to a 16-bit wav: round(x * 32768) to nearest even, clipped (libswresample)."""
    x = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(x, -32768, 32767).astype(np.int16)


def wav16_round_trip(samples: np.ndarray) -> np.ndarray:
    """The track as the original's VGGish saw it: written to a 16-bit wav by ffmpeg, read back /32768.

    The default path keeps the decoder's float samples (no quantisation); compat rounds, which
    moves log-mel values by up to ~0.1 on quiet passages.
    """
    return int16_to_float(float_to_int16(samples))


def example_hop(fps: float) -> float:
    # Kept as the original's float64 product: at 24 fps it rounds some starts down a row.
    return (1.0 / float(fps)) * LOGMEL_RATE


def example_starts(n_rows: int, fps: float) -> np.ndarray:
    """Start rows of the original's 0.96 s examples: round(k*h), E = 1 + floor((L-96)/h)."""
    h = example_hop(fps)
    if n_rows < EXAMPLE_ROWS:
        return np.zeros(0, dtype=np.int64)
    e = 1 + int(np.floor((n_rows - EXAMPLE_ROWS) / h))
    # np.round is round-half-to-even like Python's round().
    return np.round(np.arange(e, dtype=np.float64) * h).astype(np.int64)


def gather_examples(mel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(E, 96, 64) windows of ``mel`` starting at ``starts`` (one fancy-index gather)."""
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(EXAMPLE_ROWS)[None, :]
    return mel[idx]


def original_examples(samples16k: np.ndarray, fps: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The original pipeline: tail pad 1 s, log-mel, examples hopped by 1/fps.

    Returns (log_mel (L,64) float64, starts (E,), examples (E,96,64) float64).
    """
    mel = log_mel(pad_waveform(samples16k))
    starts = example_starts(mel.shape[0], fps)
    return mel, starts, gather_examples(mel, starts)


def compat_rows(n_frames: int, n_examples: int) -> np.ndarray:
    """Embedding row per frame in the original's output: row i+1 (row 0 is lost when the CSV
    is read back with a header); the last row repeats when N > E-1."""
    last = max(n_examples - 1, 0)
    return np.minimum(np.arange(n_frames, dtype=np.int64) + 1, last)


def time_rows(times: np.ndarray, fps: float) -> np.ndarray:
    """Log-mel row at which each frame's centred example starts: round(t * 100).

    With the 0.48 s head padding, row r covers [r/100 - 0.48, r/100 + 0.48) of the track, so
    the example of a frame at time t is centred on t. The product is taken as (t * fps) * h
    with h the i/fps path's float64 hop, and times within half a millisecond of the nominal
    grid i/fps (a container clock in milliseconds rounds that much; SNAP_S) are snapped to it: a
    constant-frame-rate video then gets exactly the rows of ``round(i * h)``, ties included.
    """
    pos = np.asarray(times, dtype=np.float64) * float(fps)
    whole = np.round(pos)
    pos = np.where(np.abs(pos - whole) <= SNAP_S * float(fps), whole, pos)
    return np.round(pos * example_hop(fps)).astype(np.int64)


def centred_examples(samples16k: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    """(N, 96, 64) float64: each frame's example is centred on its time (seconds).

    0.48 s of edge padding in front makes the window of a frame at 0 s start at -0.48 s; the
    original's 1 s tail padding stays. Starts past the end (audio shorter than the video)
    are clamped to the last full window.
    """
    head = EXAMPLE_ROWS // 2 * HOP
    mel = log_mel(pad_waveform(samples16k, head=head))
    starts = np.clip(time_rows(times, fps), 0, max(mel.shape[0] - EXAMPLE_ROWS, 0))
    if mel.shape[0] < EXAMPLE_ROWS:
        mel = np.pad(mel, ((0, EXAMPLE_ROWS - mel.shape[0]), (0, 0)), mode="edge")
    return gather_examples(mel, starts)


def centred_mean(samples16k: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    """(N, 64) mean log-mel of each frame's centred 0.96 s example, via a cumulative sum."""
    head = EXAMPLE_ROWS // 2 * HOP
    mel = log_mel(pad_waveform(samples16k, head=head))
    if mel.shape[0] < EXAMPLE_ROWS:
        mel = np.pad(mel, ((0, EXAMPLE_ROWS - mel.shape[0]), (0, 0)), mode="edge")
    starts = np.clip(time_rows(times, fps), 0, mel.shape[0] - EXAMPLE_ROWS)
    csum = np.concatenate([np.zeros((1, mel.shape[1])), np.cumsum(mel, axis=0)])
    return (csum[starts + EXAMPLE_ROWS] - csum[starts]) / EXAMPLE_ROWS


def audio_or_none(video: VideoInput, extractor: str, dim: int) -> Optional[np.ndarray]:
    """The 16 kHz track, or None after recording why the output will be zeros."""
    audio = video.audio()
    if audio is None:
        zeros_with_warning(video, extractor, "no audio track", dim)
        return None
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE:
        zeros_with_warning(video, extractor, "silent audio track", dim)
        return None
    return audio


@EXTRACTORS.register("logmel")
class LogMelExtractor(Extractor):
    """64-d: the mean of the VGGish log-mel example centred on each frame (no weights needed)."""

    stem = "logmel"
    modality = "audio"
    result_keys = ("compat",)  # compat: rows at i/fps instead of the recorded frame times

    def dim(self) -> int:
        return MEL_BANDS

    def extract(self, video: VideoInput) -> np.ndarray:
        audio = audio_or_none(video, self.name, self.dim())
        if audio is None:
            return np.zeros((video.n_frames, self.dim()), np.float32)
        return centred_mean(audio, video.times, video.fps).astype(np.float32)


def _opensmile():
    try:
        import opensmile  # optional dependency
    except ImportError:
        return None
    return opensmile


class OpenSmileExtractor(Extractor):
    """openSMILE low-level descriptors (10 ms), averaged over a 1 s window centred on each frame.

    The original's eGeMAPS runs the functionals once per frame over a 1 s window, which is
    extremely slow; averaging the LLDs over the same window costs one openSMILE pass.
    """

    modality = "audio"
    result_keys = ("compat",)  # compat: rows at i/fps instead of the recorded frame times
    feature_set = ""
    column_prefixes: Tuple[str, ...] = ()
    window_s = 1.0

    def __init__(self, settings=None):
        super().__init__(settings)
        self._smile = None

    @classmethod
    def available(cls) -> Optional[str]:
        return None if _opensmile() is not None else "the optional package 'opensmile' is not installed"

    def _get(self):
        if self._smile is None:
            sm = _opensmile()
            if sm is None:
                raise RuntimeError(f"{self.name}: {self.available()}")
            self._smile = sm.Smile(
                feature_set=getattr(sm.FeatureSet, self.feature_set),
                feature_level=sm.FeatureLevel.LowLevelDescriptors,
            )
        return self._smile

    def _columns(self, names) -> list:
        if not self.column_prefixes:
            return list(range(len(names)))
        return [i for i, c in enumerate(names) if c.startswith(self.column_prefixes)]

    def lld(self, audio: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(times (M,), values (M, D)) of the LLDs; times are frame centres in seconds."""
        smile = self._get()
        df = smile.process_signal(np.asarray(audio, np.float32), SAMPLE_RATE)
        cols = self._columns(list(df.columns))
        vals = df.to_numpy(dtype=np.float64)[:, cols]
        start = df.index.get_level_values("start").total_seconds().to_numpy()
        end = df.index.get_level_values("end").total_seconds().to_numpy()
        return (start + end) / 2.0, np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0)

    def dim(self) -> int:
        if self._dim is None:
            _, vals = self.lld(np.sin(np.arange(SAMPLE_RATE) * 0.1).astype(np.float32) * 0.1)
            self._dim = vals.shape[1]
        return self._dim

    def extract(self, video: VideoInput) -> np.ndarray:
        audio = audio_or_none(video, self.name, self.dim())
        if audio is None:
            return np.zeros((video.n_frames, self.dim()), np.float32)
        times, vals = self.lld(audio)
        return window_mean(times, vals, video.times, self.window_s).astype(np.float32)


def window_mean(times: np.ndarray, vals: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """Mean of the rows of ``vals`` whose time lies in [c - w/2, c + w/2) for each centre;
    the nearest row when a window holds none."""
    if vals.shape[0] == 0:
        return np.zeros((centres.size, vals.shape[1]))
    csum = np.concatenate([np.zeros((1, vals.shape[1])), np.cumsum(vals, axis=0)])
    lo = np.searchsorted(times, centres - width / 2, side="left")
    hi = np.searchsorted(times, centres + width / 2, side="left")
    count = hi - lo
    out = np.empty((centres.size, vals.shape[1]))
    ok = count > 0
    out[ok] = (csum[hi[ok]] - csum[lo[ok]]) / count[ok, None]
    if (~ok).any():
        c = centres[~ok]
        nxt = np.clip(np.searchsorted(times, c), 0, times.size - 1)
        prv = np.clip(nxt - 1, 0, times.size - 1)
        near = np.where(np.abs(times[prv] - c) <= np.abs(times[nxt] - c), prv, nxt)
        out[~ok] = vals[near]
    return out


@EXTRACTORS.register("egemaps")
class EGeMAPSExtractor(OpenSmileExtractor):
    """25-d eGeMAPSv02 LLDs (pitch, loudness, jitter, shimmer, formants, ...) per frame."""

    stem = "egemaps"
    feature_set = "eGeMAPSv02"


def deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """HTK regression deltas over ``width`` rows each side, edges replicated (openSMILE's
    cDeltaRegression with deltaWindow 2, as the original's MFCC config)."""
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    n = x.shape[0]
    num = sum(k * (pad[width + k:width + k + n] - pad[width - k:width - k + n]) for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


@EXTRACTORS.register("mfcc")
class MFCCExtractor(OpenSmileExtractor):
    """39-d like the original's MFCC: openSMILE emobase loudness + MFCC 1-12 (13 values,
    loudness standing in for c0), their deltas and delta-deltas, each averaged over 1 s
    centred on the frame."""

    stem = "mfcc"
    feature_set = "emobase"
    column_prefixes = ("pcm_loudness", "mfcc")

    def lld(self, audio: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        times, base = super().lld(audio)
        d = deltas(base)
        return times, np.concatenate([base, d, deltas(d)], axis=1)
