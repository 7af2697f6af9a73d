"""What every video-level extractor shares: settings, windows, the per-video input and the interface.

A video-level extractor turns one video into per-window vectors (W, D) over fixed-length
time windows (default 5 s every 2.5 s) and one vector (D,) for the whole video. The
windows depend only on the video's duration and the settings (:func:`window_times`), so every
extractor of a video has the same W and the same ``window_times``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.core.config import section
from bah.core.files import config_hash
from bah.core.media import UNREAD, LazyAudio
from bah.core.registry import Registry

log = logging.getLogger(__name__)

STAGE = "video_features"
VERSION = 1  # bump when an extractor's numbers change for the same settings
TEXT_SOURCES = ("auto", "release", "asr")


@section("video_features")
@dataclass(frozen=True)
class VideoFeatureConfig:
    extractors: Tuple[str, ...] = ("timing", "prosody", "text-embed", "lexical")
    window_s: float = 5.0
    hop_s: float = 2.5
    # Words for the text extractors: auto = the release's transcription when present, else ASR.
    text_source: str = "auto"
    text_model: str = "minilm"  # packaged MiniLM, or a sentence-transformers / transformers folder
    text_batch_size: int = 32
    asr_when_missing: bool = True  # run ASR (and keep its transcript) when `bah transcribe` has not
    vad_threshold: float = 0.5
    erased_min_s: float = 0.5  # inside a segment with words, shorter uncovered speech is word-time jitter
    pause_min_s: float = 0.2  # shorter VAD silences inside speech are not pauses
    encoder_path: Optional[str] = None  # hf-encoder: a Hugging Face image or audio model folder
    encoder_frames: int = 1  # hf-encoder (images): frames per window, evenly spaced
    device: str = "cpu"

    def __post_init__(self) -> None:
        ex = self.extractors
        if isinstance(ex, str):
            ex = tuple(s.strip() for s in ex.split(",") if s.strip())
        object.__setattr__(self, "extractors", tuple(ex))
        from bah.stages.video_features import VIDEO_EXTRACTORS  # the registry is filled by the package

        try:
            for name in self.extractors:
                VIDEO_EXTRACTORS.get(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        if len(set(self.extractors)) != len(self.extractors):
            raise ValueError(f"extractors listed twice: {list(self.extractors)}")
        if not (self.window_s > 0 and self.hop_s > 0):
            raise ValueError(f"window_s and hop_s must be > 0, got {self.window_s}, {self.hop_s}")
        if self.text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {self.text_source!r}")
        if self.encoder_frames < 1 or self.text_batch_size < 1:
            raise ValueError("encoder_frames and text_batch_size must be >= 1")

    def result_hash(self, name: str) -> str:
        # the windows and the settings the extractor names (``result_keys``) enter its status
        # hash, so changing one extractor's setting redoes only it
        d = asdict(self)
        keys = ("window_s", "hop_s") + tuple(VIDEO_EXTRACTORS.get(name).result_keys)
        return config_hash({"extractor": name, "version": VERSION, **{k: d[k] for k in keys}})


def window_times(duration: float, window_s: float, hop_s: float) -> np.ndarray:
    """(W, 2) start/end seconds: starts at k * hop_s, each window_s long, the last one cut at
    the end; as many as needed for the last window to reach the end (at least one), never one
    that starts at or after the end (with hop_s > window_s the gaps stay gaps)."""
    duration = max(float(duration), 0.0)
    if duration <= window_s:
        n = 1
    else:
        n = min(1 + int(math.ceil((duration - window_s) / hop_s - 1e-9)), int(math.ceil(duration / hop_s - 1e-9)))
    starts = np.arange(n, dtype=np.float64) * hop_s
    ends = np.minimum(starts + window_s, duration if duration > 0 else window_s)
    return np.stack([starts, ends], axis=1)


def overlap(a: np.ndarray, s: float, e: float) -> np.ndarray:
    """Seconds of each (start, end) row of ``a`` inside [s, e]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    return np.clip(np.minimum(a[:, 1], e) - np.maximum(a[:, 0], s), 0.0, None)


def union(spans: np.ndarray) -> np.ndarray:
    """Sorted, merged (start, end) rows."""
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    spans = spans[spans[:, 1] > spans[:, 0]]
    if spans.size == 0:
        return spans
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    out = [list(spans[0])]
    for s, e in spans[1:]:
        if s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.asarray(out)


def subtract(spans: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Parts of ``spans`` not covered by ``holes`` (both (K, 2) seconds)."""
    out = []
    holes = union(holes)
    for s, e in union(spans):
        cur = s
        for hs, he in holes:
            if he <= cur or hs >= e:
                continue
            if hs > cur:
                out.append((cur, hs))
            cur = max(cur, he)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


@dataclass
class Clip(LazyAudio):
    """One video as the video-level extractors see it; audio, words and the face record are read
    at most once and shared by every extractor of the video."""

    video_id: str
    path: Optional[Path]
    duration: float
    fps: float = 25.0
    n_frames: int = 0
    face_dir: Optional[Path] = None  # folder holding face_record.npz (the face stage's output)
    transcript: str = ""  # the split file's transcript (no times)
    transcription_path: Optional[Path] = None  # the release's Whisper YAML
    asr_path: Optional[Path] = None  # <out>/transcripts/<key>.json
    asr: Optional[Callable[["Clip"], Dict[str, Any]]] = None  # makes the ASR transcript when the file is missing
    times: Optional[np.ndarray] = field(default=None, repr=False)  # (N,) frame times (s); None: i/fps
    warnings: List[str] = field(default_factory=list)
    _audio: Any = field(default=UNREAD, repr=False)
    _asr_words: Any = field(default=UNREAD, repr=False)
    _text_words: Any = field(default=UNREAD, repr=False)

    def __post_init__(self) -> None:
        if not (self.duration is not None and np.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"{self.video_id}: invalid duration {self.duration!r}")
        self.duration = float(self.duration)

    def frame_times(self) -> np.ndarray:
        """(N,) seconds of each frame: the manifest's record (VFR videos), else i/fps."""
        if self.times is None:
            from bah.core.media import frame_times

            self.times = frame_times(self.n_frames, self.fps, where=self.video_id)
        return np.asarray(self.times, dtype=np.float64)


    def asr_words(self):
        """Recognised words with Whisper's word times (``bah transcribe``'s file, else ASR now)."""
        if self._asr_words is UNREAD:
            from bah.data import parse_transcription
            from bah.stages.speech.asr import words_of

            if self.asr_path is not None and Path(self.asr_path).is_file():
                from bah.data import read_transcription

                tr = read_transcription(self.asr_path, self.duration)
            elif self.asr is not None:
                tr = parse_transcription(self.asr(self), f"ASR of {self.video_id}", self.duration)
            else:
                raise FileNotFoundError(f"{self.video_id}: no ASR transcript at {self.asr_path}; run `bah transcribe` "
                                        f"first (or set video_features.asr_when_missing=true)")
            self._asr_words = words_of(tr)
        return self._asr_words

    def text_words(self, source: str = "auto"):
        """Words for the text extractors: the release's transcription (chunk times), else ASR;
        the split-file transcript spread over the video only when neither exists."""
        if self._text_words is UNREAD:
            from bah.data import read_transcription
            from bah.stages.speech.asr import spread_words, words_of

            rel = self.transcription_path if self.transcription_path and Path(self.transcription_path).is_file() else None
            if source == "release" or (source == "auto" and rel is not None):
                if rel is not None:
                    words = words_of(read_transcription(rel, self.duration))
                else:
                    self.warnings.append("no release transcription; split-file transcript spread over the video")
                    words = spread_words(self.transcript, 0.0, self.duration)
            else:
                words = self.asr_words()
            self._text_words = words
        return self._text_words

    def set_words(self, words) -> None:
        """Provide the words directly (tests, callers that recognised them already)."""
        self._asr_words = list(words)
        self._text_words = list(words)


class VideoExtractor:
    """Base of every video-level extractor.

    ``names()`` are the D feature names; ``extract(clip, times)`` returns ``(windows (W, D),
    video (D,))`` for the windows ``times`` (W, 2) seconds.
    """

    name: str = ""
    modality: str = ""
    result_keys: Tuple[str, ...] = ()  # VideoFeatureConfig fields (besides the windows) that change the output

    def __init__(self, settings: Optional[VideoFeatureConfig] = None):
        self.settings = VideoFeatureConfig() if settings is None else settings

    @classmethod
    def available(cls) -> Optional[str]:
        """None when usable here, else the reason (a missing optional package)."""
        return None

    def names(self) -> List[str]:
        raise NotImplementedError

    def extract(self, clip: Clip, times: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def meta(self) -> Dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "dim": len(self.names())}

    def check(self, clip: Clip, times: np.ndarray, result: Tuple[np.ndarray, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        """The contract: (W, D) and (D,) float32, finite, D == len(names())."""
        win, vid = (np.asarray(a, dtype=np.float32) for a in result)
        d = len(self.names())
        if win.shape != (times.shape[0], d) or vid.shape != (d,):
            raise ValueError(f"{clip.video_id}: {self.name} produced shapes {win.shape} and {vid.shape}, expected "
                             f"({times.shape[0]}, {d}) and ({d},)")
        if not (np.isfinite(win).all() and np.isfinite(vid).all()):
            raise ValueError(f"{clip.video_id}: {self.name} produced non-finite values")
        return win, vid


class _VideoExtractorRegistry(Registry):
    """Registers the class under ``name`` and records that name on the class."""

    def register(self, name, obj=None):
        inner = super().register(name)

        def deco(cls):
            cls.name = name
            return inner(cls)

        return deco(obj) if obj is not None else deco


VIDEO_EXTRACTORS: Registry = _VideoExtractorRegistry("video feature extractor", VideoExtractor)


def per_window(times: np.ndarray, fn: Callable[[float, float], Sequence[float]]) -> np.ndarray:
    """``fn(start, end)`` for every window, stacked to (W, D)."""
    return np.asarray([fn(float(s), float(e)) for s, e in times], dtype=np.float64)
