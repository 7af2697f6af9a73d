"""Voice activity with Silero VAD: the ONNX model of the ``silero-vad`` package run by onnxruntime.

No torch: the package's own wrapper imports torch only to hold the recurrent state, which
here is a numpy array. The model reads 512-sample frames at 16 kHz (32 ms) with the last 64
samples of the previous frame prepended, and returns one speech probability per frame.
Segments come from the package's hysteresis rule (enter above ``threshold``, leave below
``threshold - 0.15`` after ``min_silence_s``; drop speech shorter than ``min_speech_s``; pad
each side by ``pad_s``), re-implemented in numpy so that the numbers match the package's.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512  # samples per model call at 16 kHz
CONTEXT = 64  # samples of the previous frame the model sees again
MODEL_FILE = "silero_vad.onnx"


def silero_model_path() -> Path:
    """The ONNX file inside the installed ``silero-vad`` package (found without importing it:
    its ``__init__`` imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("Silero VAD needs the package silero-vad (pip install silero-vad onnxruntime)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the silero-vad package has no {MODEL_FILE} at {path}")
    return path


def unavailable() -> Optional[str]:
    """None when the VAD can run here, else why not."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "the package 'onnxruntime' is not installed"
    try:
        silero_model_path()
    except FileNotFoundError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1
    pad_s: float = 0.03


class SileroVad:
    """One ONNX session, reused for every clip (one thread: parallelism is across videos)."""

    def __init__(self, model_path: Optional[Path] = None, threads: int = 1):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = max(1, int(threads))
        self.path = Path(model_path) if model_path else silero_model_path()
        self.session = onnxruntime.InferenceSession(str(self.path), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of every 512-sample frame (the last one zero-padded)."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        n = int(np.ceil(x.size / FRAME))
        if n == 0:
            return np.zeros(0, np.float32)
        padded = np.zeros(n * FRAME + CONTEXT, np.float32)
        padded[CONTEXT:CONTEXT + x.size] = x
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        out = np.empty(n, np.float32)
        for i in range(n):
            chunk = padded[i * FRAME:i * FRAME + FRAME + CONTEXT][None]
            prob, state = self.session.run(None, {"input": chunk, "state": state, "sr": sr})
            out[i] = float(prob.reshape(-1)[0])
        return out

    def segments(self, audio: np.ndarray, settings: VadSettings = VadSettings()) -> List[Tuple[float, float]]:
        """Speech segments in seconds for 16 kHz mono ``audio``."""
        x = np.asarray(audio).reshape(-1)
        return speech_segments(self.probabilities(x), x.size, settings)


def speech_segments(probs: np.ndarray, n_samples: int, settings: VadSettings = VadSettings()) -> List[Tuple[float, float]]:
    """The silero-vad hysteresis on per-frame probabilities -> (start, end) seconds."""
    thr, neg = settings.threshold, max(settings.threshold - 0.15, 0.01)
    min_speech = settings.min_speech_s * SAMPLE_RATE
    min_silence = settings.min_silence_s * SAMPLE_RATE
    pad = int(settings.pad_s * SAMPLE_RATE)
    spans: List[List[int]] = []
    triggered, start, temp_end = False, 0, 0
    for i, p in enumerate(np.asarray(probs, dtype=np.float64)):
        pos = i * FRAME
        if p >= thr and temp_end:
            temp_end = 0
        if p >= thr and not triggered:
            triggered, start = True, pos
            continue
        if p < neg and triggered:
            if not temp_end:
                temp_end = pos
            if pos - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                spans.append([start, temp_end])
            triggered, temp_end = False, 0
    if triggered and n_samples - start > min_speech:
        spans.append([start, n_samples])
    for k, s in enumerate(spans):  # pad, splitting the silence between close neighbours
        if k == 0:
            s[0] = max(0, s[0] - pad)
        if k + 1 < len(spans):
            gap = spans[k + 1][0] - s[1]
            if gap < 2 * pad:
                s[1] += gap // 2
                spans[k + 1][0] = max(0, spans[k + 1][0] - gap // 2)
            else:
                s[1] = min(n_samples, s[1] + pad)
                spans[k + 1][0] = max(0, spans[k + 1][0] - pad)
        else:
            s[1] = min(n_samples, s[1] + pad)
    return [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in spans]
