"""Evaluation protocols (registry ``PROTOCOLS``): which rows train, which rows select, which rows test.

- ``paper``: fit on train; the validation split selects (model and threshold); test is predicted.
- ``challenge``: train and val pooled; participant-grouped stratified k-fold over the pool gives
  out-of-fold (OOF) predictions for every pooled video, which select; a final refit on the whole
  pool predicts test. A participant's videos are always in the same fold.

The test rows are only ever predicted: no fit, no threshold and no model choice reads them
(``select_on: test`` exists to show the optimistic number, and every report refuses it).
Seeds change the learners' randomness, not the folds (``fold_seed``), so the seed ensemble
averages probabilities of the same videos under the same split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Sequence, Tuple

import numpy as np

from bah.core.registry import Registry

from . import learners  # noqa: F401  (fills VIDEO_LEARNERS)
from .features import VideoTable
from .learner import create_learner

__all__ = ["PROTOCOLS", "Protocol", "SeedPredictions", "ProtocolRun", "grouped_folds", "run_protocol", "SELECT_ON"]

# Where model and threshold are selected: the protocol's own choice, or (optimistic) the test split.
SELECT_ON = ("auto", "test")


@dataclass(frozen=True)
class SeedPredictions:
    seed: int
    selection: np.ndarray  # p1 of the selection rows
    test: np.ndarray  # p1 of the test rows


@dataclass(frozen=True)
class ProtocolRun:
    protocol: str
    selection_split: str  # "val", "oof" or "test"
    train_rows: np.ndarray  # rows whose labels fitted the final model(s)
    selection_rows: np.ndarray
    test_rows: np.ndarray
    seeds: Tuple[SeedPredictions, ...]
    folds: Tuple[np.ndarray, ...] = ()  # challenge: the held-out rows of each fold

    @property
    def selection_probs(self) -> np.ndarray:
        """The seed ensemble: class-1 probabilities averaged over seeds."""
        return np.mean([s.selection for s in self.seeds], axis=0)

    @property
    def test_probs(self) -> np.ndarray:
        return np.mean([s.test for s in self.seeds], axis=0)


@dataclass(frozen=True)
class Protocol:
    name: str
    run: Callable[..., ProtocolRun]
    description: str


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> List[np.ndarray]:
    """Held-out positions of each of ``k`` participant-grouped, label-stratified folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = np.unique(groups).size
    if k < 2:
        raise ValueError(f"challenge protocol: folds must be >= 2, got {k}")
    if n_groups < k:
        raise ValueError(f"challenge protocol: {k} folds need at least {k} participants, the pool has {n_groups}")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [held for _, held in cv.split(np.zeros(len(labels)), labels, groups)]


def _fit_predict(table: VideoTable, spec: Mapping[str, Any], seed: int, fit_rows: np.ndarray,
                 predict_rows: Sequence[np.ndarray]) -> List[np.ndarray]:
    model = create_learner(spec).fit(table.take(fit_rows), seed)
    return [model.predict(table.take(r)) if len(r) else np.zeros(0) for r in predict_rows]


def _require(table: VideoTable, rows: np.ndarray, what: str) -> None:
    if len(rows) == 0:
        raise ValueError(f"{what}: no videos (splits loaded: {sorted(set(table.splits.tolist()))})")


def _paper(table: VideoTable, spec: Mapping[str, Any], seeds: Sequence[int], folds: int, fold_seed: int,
           select_on: str) -> ProtocolRun:
    train, val, test = table.rows("train"), table.rows("val"), table.rows("test")
    _require(table, train, "paper protocol, train split")
    sel = test if select_on == "test" else val
    _require(table, sel, f"paper protocol, selection split ({'test' if select_on == 'test' else 'val'})")
    out = []
    for seed in seeds:
        p_sel, p_test = _fit_predict(table, spec, seed, train, [sel, test])
        out.append(SeedPredictions(int(seed), p_sel, p_test))
    return ProtocolRun("paper", "test" if select_on == "test" else "val", train, sel, test, tuple(out))


def _challenge(table: VideoTable, spec: Mapping[str, Any], seeds: Sequence[int], folds: int, fold_seed: int,
               select_on: str) -> ProtocolRun:
    pool, test = table.rows("train", "val"), table.rows("test")
    _require(table, pool, "challenge protocol, train+val")
    held = [pool[h] for h in grouped_folds(table.labels[pool], table.groups[pool], folds, fold_seed)]
    out = []
    for seed in seeds:
        oof = np.full(len(table), np.nan)
        for rows in held:
            (oof[rows],) = _fit_predict(table, spec, seed, np.setdiff1d(pool, rows), [rows])
        (p_test,) = _fit_predict(table, spec, seed, pool, [test])
        if select_on == "test":
            _require(table, test, "challenge protocol, selection on test")
            out.append(SeedPredictions(int(seed), p_test, p_test))
        else:
            out.append(SeedPredictions(int(seed), oof[pool], p_test))
    sel = test if select_on == "test" else pool
    return ProtocolRun("challenge", "test" if select_on == "test" else "oof", pool, sel, test, tuple(out),
                       tuple(held))


PROTOCOLS.register("paper", Protocol("paper", _paper, "train -> val (selection) -> test"))
PROTOCOLS.register("challenge", Protocol(
    "challenge", _challenge, "participant-grouped k-fold over train+val (OOF selection), refit, test"))


def run_protocol(name: str, table: VideoTable, spec: Mapping[str, Any], seeds: Sequence[int], folds: int = 5,
                 fold_seed: int = 0, select_on: str = "auto") -> ProtocolRun:
    if select_on not in SELECT_ON:
        raise ValueError(f"select_on {select_on!r}: choose from {SELECT_ON}")
    if not seeds:
        raise ValueError("at least one seed")
    return PROTOCOLS.get(name).run(table, spec, list(seeds), int(folds), int(fold_seed), select_on)
