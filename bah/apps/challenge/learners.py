"""The registered video-level learners (``VIDEO_LEARNERS``).

- ``logreg``: standardised pooled features -> logistic regression;
- ``gboost``: pooled features -> histogram gradient boosting;
- ``tfidf-logreg``: the transcript alone, TF-IDF (word 1-2 grams) -> logistic regression, the
  strong text baseline (0.6775 macro F1 on the challenge's public test);
- ``mil``: the torch multiple-instance model over window features (``mil.py``; torch is imported
  only when a MIL learner is built, so the scikit-learn recipes never load it);
- ``late-fusion``: one learner per modality, probabilities averaged.

Every fitted state (scaler, vocabulary, IDF weights) comes from the rows passed to ``fit``.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .features import VideoTable
from .learner import VIDEO_LEARNERS, VideoLearner, create_learner, learner_spec

__all__ = ["LogRegLearner", "GBoostLearner", "TfidfLogRegLearner", "LateFusionLearner", "MILLearner"]


class _PooledLearner(VideoLearner):
    def _matrix(self, table: VideoTable) -> np.ndarray:
        return np.concatenate([table.pooled[m] for m in self.names], axis=1).astype(np.float64)

    def _estimator(self, seed: int):
        raise NotImplementedError

    def fit(self, table: VideoTable, seed: int):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = self.targets(table)
        self.names = self.modalities(table)
        self.model = make_pipeline(StandardScaler(), self._estimator(seed)).fit(self._matrix(table), y)
        return self

    def predict(self, table: VideoTable) -> np.ndarray:
        return self.model.predict_proba(self._matrix(table))[:, 1]


@VIDEO_LEARNERS.register("logreg")
class LogRegLearner(_PooledLearner):
    name = "logreg"

    def __init__(self, features: Optional[Sequence[str]] = None, C: float = 1.0,
                 class_weight: Optional[str] = "balanced", max_iter: int = 2000):
        super().__init__(features)
        self.C, self.class_weight, self.max_iter = float(C), class_weight, int(max_iter)

    def _estimator(self, seed: int):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter,
                                  random_state=seed)


@VIDEO_LEARNERS.register("gboost")
class GBoostLearner(_PooledLearner):
    name = "gboost"

    def __init__(self, features: Optional[Sequence[str]] = None, max_iter: int = 200, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 10, l2_regularization: float = 1.0,
                 class_weight: Optional[str] = "balanced"):
        super().__init__(features)
        self.kw = dict(max_iter=int(max_iter), learning_rate=float(learning_rate), max_leaf_nodes=int(max_leaf_nodes),
                       min_samples_leaf=int(min_samples_leaf), l2_regularization=float(l2_regularization),
                       class_weight=class_weight)

    def _estimator(self, seed: int):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed, early_stopping=False, **self.kw)


@VIDEO_LEARNERS.register("tfidf-logreg")
class TfidfLogRegLearner(VideoLearner):
    name = "tfidf-logreg"
    uses_text = True

    def __init__(self, C: float = 4.0, ngram_max: int = 2, min_df: int = 1, sublinear_tf: bool = True,
                 class_weight: Optional[str] = "balanced", max_iter: int = 2000):
        super().__init__(features=[])
        self.C, self.ngram_max, self.min_df = float(C), int(ngram_max), int(min_df)
        self.sublinear_tf, self.class_weight, self.max_iter = bool(sublinear_tf), class_weight, int(max_iter)

    @staticmethod
    def _text(table: VideoTable):
        if not table.text or not any(t.strip() for t in table.text):
            raise ValueError("tfidf-logreg: no transcript text (challenge.text_source is 'none' or every "
                             "transcript is empty)")
        return list(table.text)

    def fit(self, table: VideoTable, seed: int):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        y = self.targets(table)
        # \w+ keeps one- and two-letter tokens: "um", "uh", "I" carry hesitation
        vec = TfidfVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b", ngram_range=(1, self.ngram_max),
                              min_df=self.min_df, sublinear_tf=self.sublinear_tf)
        clf = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter, random_state=seed)
        self.model = make_pipeline(vec, clf).fit(self._text(table), y)
        return self

    def predict(self, table: VideoTable) -> np.ndarray:
        return self.model.predict_proba(self._text(table))[:, 1]


@VIDEO_LEARNERS.register("late-fusion")
class LateFusionLearner(VideoLearner):
    """Members (``[{learner: NAME, ...}, ...]``) fitted on the same rows; their class-1
    probabilities are averaged (``weights``: a weighted average)."""

    name = "late-fusion"

    def __init__(self, members: Sequence[Mapping[str, Any]] = (), weights: Optional[Sequence[float]] = None):
        super().__init__(features=[])
        if len(members) < 1:
            raise ValueError("late-fusion: give at least one member, e.g. members: [{learner: tfidf-logreg}]")
        self.specs = [learner_spec(m) for m in members]
        for spec in self.specs:
            create_learner(spec)  # a member's bad keyword fails now, not after the first fold
        w = np.ones(len(self.specs)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.specs),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"late-fusion: weights {weights} must be {len(self.specs)} non-negative numbers")
        self.weights = w / w.sum()
        self.uses_text = any(VIDEO_LEARNERS.get(s["learner"]).uses_text for s in self.specs)

    def fit(self, table: VideoTable, seed: int):
        self.members = [create_learner(s).fit(table, seed) for s in self.specs]
        return self

    def predict(self, table: VideoTable) -> np.ndarray:
        return np.sum([w * m.predict(table) for w, m in zip(self.weights, self.members)], axis=0)


@VIDEO_LEARNERS.register("mil")
class MILLearner(VideoLearner):
    """Keywords: ``anchor``, ``pooling`` (``mil.POOLINGS``), ``hidden``, ``epochs``, ``lr``,
    ``weight_decay``, ``batch_size``, ``window_weight``, ``dropout``, ``lse_r`` (see ``mil.MILModel``)."""

    name = "mil"

    def __init__(self, features: Optional[Sequence[str]] = None, **params: Any):
        super().__init__(features)
        from .mil import MILModel

        self.model = MILModel(**params)

    def fit(self, table: VideoTable, seed: int):
        self.model.fit(table, self.modalities(table), seed)
        return self

    def predict(self, table: VideoTable) -> np.ndarray:
        return self.model.predict(table)
