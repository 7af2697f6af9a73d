"""The one interface every zero-shot model sits behind, and the deterministic fake.

A backend turns one :class:`Item` (sampled frames, transcript, rendered prompt, the two
candidate answers) into an :class:`Answer` (raw text, optional per-candidate scores). Frame
sampling, prompt rendering, parsing, caching, metrics and the CLI know nothing of backends.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.core.registry import Registry
from bah.apps.zeroshot.prompt import RenderedPrompt

__all__ = [
    "BACKENDS", "Item", "Answer", "Backend", "BackendError", "BackendUnavailable", "FakeBackend", "create_backend",
]


class BackendError(RuntimeError):
    """One request failed for good (malformed response, refused input): that item fails, the run goes on."""


class BackendUnavailable(RuntimeError):
    """The model or server cannot be used at all (missing path, unreachable server): the run stops."""


@dataclass
class Item:
    key: str  # unit id: the video id, or '<video id>#<start>-<end>' for a window
    frames: Optional[List[np.ndarray]]  # H x W x 3 uint8, or None for text-only backends
    transcript: Optional[str]
    prompt: RenderedPrompt
    candidates: Tuple[str, str]
    frame_indices: Tuple[int, ...] = ()

    def input_hash(self) -> str:
        """Identity of the inputs (frame pixels, transcript, indices) for the response cache."""
        h = hashlib.sha256()
        h.update(repr(self.frame_indices).encode())
        for f in self.frames or ():
            a = np.ascontiguousarray(f)
            h.update(repr((a.shape, str(a.dtype))).encode())
            h.update(a.tobytes())
        h.update(b"\0T" + (self.transcript or "").encode("utf-8"))
        h.update(b"\0C" + "\x1f".join(self.candidates).encode("utf-8"))
        return h.hexdigest()[:24]


@dataclass
class Answer:
    text: str
    scores: Optional[Tuple[float, float]] = None  # log-likelihood of candidate 0 and candidate 1
    meta: Dict[str, Any] = field(default_factory=dict)  # latency, tokens, backend facts

    def to_dict(self) -> Dict[str, Any]:
        return {"text": self.text, "scores": list(self.scores) if self.scores is not None else None, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Answer":
        s = d.get("scores")
        return cls(str(d.get("text", "")), tuple(float(v) for v in s) if s is not None else None, dict(d.get("meta") or {}))


class Backend:
    """Subclasses set ``needs_frames`` and implement ``predict``; ``identity`` keys the cache."""

    needs_frames: bool = True
    max_concurrency: int = 1
    # the prompt template kind the backend consumes: video models get '<video>' in compat style
    video_prompts: bool = True

    def identity(self) -> Dict[str, Any]:
        raise NotImplementedError

    def generation_params(self) -> Dict[str, Any]:
        return {}

    def versions(self) -> Dict[str, str]:
        """Library versions that can change answers (recorded with every run, not in the cache key)."""
        return {}

    def predict(self, item: Item) -> Answer:
        raise NotImplementedError

    def close(self) -> None:
        pass


BACKENDS: Registry = Registry("zero-shot backend", Backend)


@BACKENDS.register("fake")
class FakeBackend(Backend):
    """A deterministic rule on the transcript, for pipeline tests and dry runs.

    Answers ``Ambivalent`` when the transcript has any of ``words`` (hedges by default), else
    ``Non-Ambivalent``; the scores follow the same rule with a margin that grows with the
    number of matches, so AP is defined. ``calls`` counts real predictions (cache tests).
    """

    needs_frames = False
    video_prompts = True

    def __init__(self, words: Sequence[str] = ("but", "maybe", "not sure", "i guess", "although", "um", "uh"),
                 scores: bool = True, text_template: str = "{answer}", **_: Any):
        self.words = tuple(w.lower() for w in words)
        self.scores = scores
        self.text_template = text_template
        self.calls = 0

    def identity(self) -> Dict[str, Any]:
        # bump "rule" whenever predict changes, so cached answers of the old rule are not reused
        return {"backend": "fake", "rule": 2, "words": list(self.words), "template": self.text_template}

    def predict(self, item: Item) -> Answer:
        t0 = time.perf_counter()
        self.calls += 1
        # words only, so punctuation next to a hedge ('Er, maybe.') does not hide it
        text = " " + " ".join(re.findall(r"[a-z']+", (item.transcript or "").lower())) + " "
        hits = sum(text.count(f" {w} ") for w in self.words)
        answer = item.candidates[1] if hits else item.candidates[0]
        scores = (-1.0 - 0.5 * hits, -2.0 + 0.5 * hits) if self.scores else None
        return Answer(self.text_template.format(answer=answer), scores,
                      {"latency_s": time.perf_counter() - t0, "backend": "fake"})


def create_backend(name: str, **kwargs: Any) -> Backend:
    return BACKENDS.create(name, **kwargs)
