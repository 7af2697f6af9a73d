"""The interface every video-level learner follows, and its registry.

A learner is built from plain keywords, fitted on the rows of a ``VideoTable`` that it is
given (the training rows of one fold: any standardisation or vocabulary is fitted there and
nowhere else) and returns the class-1 probability of each video it is asked about.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from bah.core.registry import Registry

from .features import VideoTable

__all__ = ["VideoLearner", "VIDEO_LEARNERS", "create_learner", "learner_spec"]


class VideoLearner:
    """Base class: ``fit(table, seed)`` then ``predict(table) -> (n,) p1``."""

    name = "?"
    uses_text = False

    def __init__(self, features: Optional[Sequence[str]] = None):
        self.features = None if features is None else [str(f) for f in features]

    def fit(self, table: VideoTable, seed: int) -> "VideoLearner":
        raise NotImplementedError

    def predict(self, table: VideoTable) -> np.ndarray:
        raise NotImplementedError

    def modalities(self, table: VideoTable) -> List[str]:
        """The learner's feature names, checked against what the table holds."""
        names = table.modalities if self.features is None else self.features
        missing = [m for m in names if m not in table.pooled]
        if missing:
            raise ValueError(f"learner {self.name!r}: features {missing} were not loaded "
                             f"(loaded: {table.modalities}); add them to challenge.features")
        if not names:
            raise ValueError(f"learner {self.name!r}: no video features to learn from (challenge.features is empty)")
        return list(names)

    @staticmethod
    def targets(table: VideoTable) -> np.ndarray:
        y = table.labels
        if (y < 0).any():
            raise ValueError(f"cannot fit on unlabelled videos, e.g. {table.ids[int(np.argmax(y < 0))]!r}")
        if np.unique(y).size < 2:
            raise ValueError(f"cannot fit on {len(y)} videos of one class ({int(y[0])})")
        return y


VIDEO_LEARNERS: Registry[type] = Registry("video learner", VideoLearner)


def learner_spec(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """Split ``{learner: NAME, **kwargs}`` and check the name."""
    if not isinstance(spec, Mapping) or "learner" not in spec:
        raise ValueError(f"a learner is given as {{learner: NAME, ...keywords}}, got {spec!r}")
    VIDEO_LEARNERS.get(spec["learner"])
    return dict(spec)


def create_learner(spec: Mapping[str, Any]) -> VideoLearner:
    spec = learner_spec(spec)
    name = spec.pop("learner")
    try:
        return VIDEO_LEARNERS.create(name, **spec)
    except TypeError as exc:
        raise ValueError(f"learner {name!r}: {exc}") from None
