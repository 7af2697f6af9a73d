"""``lexical``: hesitation markers in the words of each window, per word.

The lexicon (lower case, apostrophes normalised; multi-word entries match as phrases on
word boundaries):

- hedges: uncertainty about one's own statement (``maybe``, ``i guess``, ``not sure``, ``kind of``, ...);
- fillers: filled pauses as written by people or by recognisers that keep them (``um``, ``uh``, ``er``, ...);
- self-corrections: a speaker revising what they just said (``i mean``, ``or rather``, ``actually``, ...);
- repetitions: a word said twice in a row (``I I think``), or a two-word phrase twice in a row.

Features: ``word_count`` then, per class, the count per word and whether any is present.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from bah.stages.video_features.base import VIDEO_EXTRACTORS, Clip, VideoExtractor

HEDGES: Tuple[str, ...] = (
    "maybe", "perhaps", "probably", "possibly", "i guess", "i suppose", "i think", "not sure", "kind of", "sort of",
    "i don't know", "don't know", "on the other hand", "might", "somewhat", "more or less", "i'm not certain",
)
FILLERS: Tuple[str, ...] = ("um", "umm", "uh", "uhh", "er", "erm", "hmm", "mm", "mmm", "ah", "eh", "uhm")
CORRECTIONS: Tuple[str, ...] = ("i mean", "or rather", "actually", "no wait", "sorry", "let me rephrase", "well")

CLASSES = ("hedge", "filler", "correction", "repetition")
NAMES = ("word_count",) + tuple(f"{c}_per_word" for c in CLASSES) + tuple(f"has_{c}" for c in CLASSES)

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")


def tokens(words: Sequence[str]) -> List[str]:
    """Lower-case word tokens, punctuation dropped (``"Maybe,"`` -> ``maybe``)."""
    out: List[str] = []
    for w in words:
        out.extend(_TOKEN.findall(w.lower().replace("\u2019", "'")))
    return out


def _phrase_count(toks: Sequence[str], phrases: Sequence[str]) -> int:
    """Occurrences of any phrase, each token used by at most one (longest phrase first)."""
    split = sorted((p.split() for p in phrases), key=len, reverse=True)
    n, i, used = 0, 0, len(toks)
    while i < used:
        for p in split:
            if list(toks[i:i + len(p)]) == p:
                n += 1
                i += len(p)
                break
        else:
            i += 1
    return n


def repetitions(toks: Sequence[str]) -> int:
    """Words repeated at once (``i i``) plus two-word phrases repeated at once (``i was i was``)."""
    n = sum(1 for a, b in zip(toks, toks[1:]) if a == b and a not in FILLERS)
    n += sum(1 for k in range(len(toks) - 3) if toks[k:k + 2] == toks[k + 2:k + 4] and toks[k] != toks[k + 1])
    return n


def marker_counts(words: Sequence[str]) -> Dict[str, int]:
    toks = tokens(words)
    return {"words": len(toks), "hedge": _phrase_count(toks, HEDGES), "filler": _phrase_count(toks, FILLERS),
            "correction": _phrase_count(toks, CORRECTIONS), "repetition": repetitions(toks)}


def lexical_vector(words: Sequence[str]) -> List[float]:
    c = marker_counts(words)
    n = c["words"]
    return ([float(n)] + [c[k] / n if n else 0.0 for k in CLASSES] + [float(c[k] > 0) for k in CLASSES])


@VIDEO_EXTRACTORS.register("lexical")
class LexicalExtractor(VideoExtractor):
    modality = "text"
    result_keys = ("text_source",)

    def names(self):
        return list(NAMES)

    def extract(self, clip: Clip, times: np.ndarray):
        words = clip.text_words(self.settings.text_source)
        mid = np.asarray([(w.start + w.end) / 2 for w in words])
        text = [w.text for w in words]
        win = [lexical_vector([t for t, m in zip(text, mid) if s <= m < e]) for s, e in times]
        return np.asarray(win), np.asarray(lexical_vector(text))
