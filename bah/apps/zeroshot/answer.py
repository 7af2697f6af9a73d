"""Answer text -> label, under named policies.

The two group repositories disagree on the class of an answer they cannot read: the
Video-LLaVA script gives 1 to anything but an exact ``Non-Ambivalent``, the AffectGPT
script gives 0 to anything but an exact ``Ambivalent``. Both are kept as named policies;
``fixed`` reads formatting variants and leaves the rest to an explicit ``unparsed`` policy.
Every policy reports whether the answer was *parsed* (recognised as one of the answers)
so the unparsed count is always known, whatever label the policy then assigns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from bah.core.registry import Registry

__all__ = ["PARSERS", "UNPARSED_POLICIES", "Parse", "AnswerParser", "create_parser"]

PARSERS: Registry = Registry("answer parser")
# what ``fixed`` does with an answer it cannot read: a class, or no prediction at all
UNPARSED_POLICIES = ("0", "1", "abstain")


@dataclass(frozen=True)
class Parse:
    label: Optional[int]  # None: abstained (fixed parser, unparsed answer, policy 'abstain')
    parsed: bool  # the answer was recognised as one of the two answers


class AnswerParser:
    def __init__(self, unparsed: str = "abstain"):
        if unparsed not in UNPARSED_POLICIES:
            raise ValueError(f"unparsed policy {unparsed!r}; choose one of {UNPARSED_POLICIES}")
        self.unparsed = unparsed

    def __call__(self, text: str) -> Parse:
        raise NotImplementedError


def _after_last_colon(text: str) -> str:
    # The original decodes prompt + answer and keeps what follows the last ':' (the one of
    # 'ASSISTANT:' unless the answer has its own colon); applied to the answer alone it is the same.
    return text.rsplit(":", 1)[-1].strip()


@PARSERS.register("compat-videollava")
class VideoLlavaParser(AnswerParser):
    """Exactly ``Non-Ambivalent`` -> 0, anything else -> 1 (the original script)."""

    def __call__(self, text: str) -> Parse:
        ans = _after_last_colon(text or "")
        return Parse(0 if ans == "Non-Ambivalent" else 1, ans in ("Non-Ambivalent", "Ambivalent"))


@PARSERS.register("compat-affectgpt")
class AffectGptParser(AnswerParser):
    """Exactly ``Ambivalent`` -> 1, anything else -> 0 (the AffectGPT BAH script)."""

    def __call__(self, text: str) -> Parse:
        ans = (text or "").strip()
        return Parse(1 if ans == "Ambivalent" else 0, ans in ("Non-Ambivalent", "Ambivalent"))


_NEG = re.compile(r"\bnon[- ]?ambivalen\w*|\bnot (?:\w+ )?ambivalen\w*|\bunambivalen\w*")
_POS = re.compile(r"\bambivalen\w*|\bhesitan\w*")
_PUNCT = re.compile(r"[\"'`“”‘’.,;:!?()\[\]{}*_]+")


@PARSERS.register("fixed")
class FixedParser(AnswerParser):
    """Casefold, drop punctuation and quotes, then look for the negative form first.

    An answer naming both forms (``Ambivalent or Non-Ambivalent``) is ambiguous: unparsed.
    """

    def __call__(self, text: str) -> Parse:
        norm = " ".join(_PUNCT.sub(" ", (text or "").casefold()).split())
        has_neg = bool(_NEG.search(norm))
        has_pos = bool(_POS.search(_NEG.sub(" ", norm)))
        if has_neg != has_pos:
            return Parse(0 if has_neg else 1, True)
        return Parse(None if self.unparsed == "abstain" else int(self.unparsed), False)


def create_parser(name: str, unparsed: str = "abstain") -> AnswerParser:
    return PARSERS.create(name, unparsed=unparsed)
