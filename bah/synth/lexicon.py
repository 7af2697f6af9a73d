"""Words the synthetic participants say.

Confident statements carry no hedge at all, so the text cue is exactly "a hedge is present".
Both pools are about the BAH interview prompts (daily routine, habits, plans, things put off)
and have a similar vocabulary size, so a text model has to find the hedges, not the topic.
"""
from __future__ import annotations

import re
from typing import Tuple

# Any of these in a transcript marks hesitant wording; tests and docs use this list.
HEDGES: Tuple[str, ...] = (
    "i'm not sure",
    "maybe",
    "i guess",
    "kind of",
    "on the other hand",
    "i don't know",
    "sort of",
    "perhaps",
    "probably",
)

# Spoken alone, slowly and low, between pauses, inside the A/H intervals. They are in the audio
# only: the release's Whisper transcripts (and the synthetic ones) leave filled pauses out, so
# the time they take is "erased" speech (speech per VAD without recognised words). These three
# are the ones the packaged recogniser (Whisper tiny.en) drops most often in espeak-ng speech
# ("Hmm", "Uh" and "Erm" are mostly written out, measured over the eight synthetic voices).
FILLERS: Tuple[str, ...] = ("Um", "Umm", "Er")

CONFIDENT: Tuple[str, ...] = (
    "I wake up at seven and make coffee.",
    "Every morning I walk the dog before work.",
    "I take the bus to the office, it is quick.",
    "After lunch I answer my emails.",
    "I cook dinner for my family every night.",
    "On weekends I play soccer with friends.",
    "I read the news while I eat breakfast.",
    "My job is to fix computers at a school.",
    "I go to the gym three times a week.",
    "I finished the report on Friday.",
    "We visit my parents every Sunday.",
    "I always plan my day the night before.",
    "I like to run in the park, it clears my head.",
    "The best part of my day is dinner.",
    "I study in the library after class.",
    "I clean the kitchen right after I eat.",
    "I call my sister every week.",
    "I started a new course last month.",
    "My commute takes twenty minutes.",
    "I water the plants on Saturday.",
    "I pay my bills on the first of the month.",
    "I fixed the bike, it works well now.",
    "I know exactly what I want to do.",
    "I enjoy my work and my team.",
)

HESITANT: Tuple[str, ...] = (
    "I'm not sure.",
    "Maybe.",
    "I guess.",
    "Kind of.",
    "I don't know.",
    "Maybe I should, I guess.",
    "I'm not sure, maybe later.",
    "On the other hand, I don't know.",
    "Perhaps, sort of.",
    "I guess it is kind of hard.",
    "Maybe I will, I'm not sure.",
    "Probably, I don't know.",
    "Sort of, on the other hand.",
    "I'm not sure I want to change.",
    "Maybe next week, perhaps.",
    "I guess I could try, maybe.",
)


# Word boundaries so that "maybe" does not match inside another word.
_HEDGE_RE = re.compile(r"(?<![a-z'])(" + "|".join(re.escape(h) for h in HEDGES) + r")(?![a-z'])")


def has_hedge(text: str) -> bool:
    """True when ``text`` contains one of :data:`HEDGES` (case-insensitive, apostrophes normalised)."""
    return _HEDGE_RE.search(text.lower().replace("\u2019", "'")) is not None
