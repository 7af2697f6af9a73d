"""The ``challenge`` configuration section (``bah fit-video``); a recipe under configs/ is a
config file holding this section.

```yaml
challenge:
  name: video-text-tfidf
  mirrors: "transcript TF-IDF + logistic regression (0.6775 on the public test)"
  weights: []                      # model files the features need; none for the offline recipes
  work: /scratch/bah-work          # the video-feature stage's --out (video_features/, transcripts/)
  features: [timing]               # extractor names under <work>/video_features/
  text_source: split               # split | transcripts | release | none
  learner: tfidf-logreg
  learner_kwargs: {C: 4.0}
  candidates: []                   # [{learner: NAME, ...}, ...]: selected on val / OOF
  protocol: challenge              # paper | challenge
  folds: 5
  fold_seed: 0
  seeds: [0, 1, 2]
  calibration: plateau             # fixed | base_rate | plateau | argmax
  select_on: auto                  # auto (val or OOF) | test (optimistic: reports refuse test numbers)
  window_overlap: fraction         # any | fraction
  window_fraction: 0.5
```
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from bah.core.config import section

from . import learners  # noqa: F401  (fills VIDEO_LEARNERS before the section is validated)
from .calibration import CALIBRATIONS
from .features import TEXT_SOURCES, WindowRule
from .learner import VIDEO_LEARNERS, create_learner, learner_spec
from .protocol import PROTOCOLS, SELECT_ON

__all__ = ["ChallengeConfig", "candidate_specs"]


@section("challenge")
@dataclass(frozen=True)
class ChallengeConfig:
    name: str = "video"
    mirrors: str = ""
    weights: Tuple[str, ...] = ()
    work: Optional[Path] = None
    features: Tuple[str, ...] = ()
    text_source: str = "split"
    learner: str = "tfidf-logreg"
    learner_kwargs: Dict[str, Any] = field(default_factory=dict)
    candidates: Tuple[Any, ...] = ()
    protocol: str = "challenge"
    folds: int = 5
    fold_seed: int = 0
    seeds: Tuple[int, ...] = (0, 1, 2)
    calibration: str = "plateau"
    select_on: str = "auto"
    window_overlap: str = "fraction"
    window_fraction: float = 0.5

    def __post_init__(self):
        # registry lookups raise KeyError; the config loader reports ValueErrors as configuration errors
        try:
            self._check()
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None

    def _check(self):
        VIDEO_LEARNERS.get(self.learner)
        PROTOCOLS.get(self.protocol)
        CALIBRATIONS.get(self.calibration)
        if self.text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source {self.text_source!r}: choose from {', '.join(TEXT_SOURCES)}")
        if self.select_on not in SELECT_ON:
            raise ValueError(f"select_on {self.select_on!r}: choose from {', '.join(SELECT_ON)}")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if not isinstance(self.learner_kwargs, dict):
            raise ValueError("learner_kwargs must be a mapping")
        for spec in candidate_specs(self):
            create_learner(spec)  # a bad keyword fails here, before any fit
        self.window_rule  # noqa: B018 - validates the overlap rule now, not mid-run

    @property
    def window_rule(self) -> WindowRule:
        return WindowRule(self.window_overlap, float(self.window_fraction))


def candidate_specs(cfg: ChallengeConfig):
    """The learners to compare on the selection split: ``candidates``, else the one ``learner``."""
    if cfg.candidates:
        return [learner_spec(c) for c in cfg.candidates]
    return [learner_spec({"learner": cfg.learner, **cfg.learner_kwargs})]
