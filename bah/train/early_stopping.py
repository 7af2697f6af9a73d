"""Early stopping on the validation metric.

Patience counts epochs without improvement from the first epoch on; ``min_epochs`` only delays
the decision: training never stops before ``min_epochs`` epochs have run, and stops at the
first epoch from then on whose count of epochs without improvement has reached ``patience``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from bah.metrics.selection import is_better


class EarlyStopping:
    """``step(epoch, value) -> bool`` says whether to stop; ``improved`` says whether the value
    is the best so far for ``metric`` (a key of ``bah.metrics.METRICS``, plain or prefixed, which
    says whether higher is better; ties count as improvement when ``ties_improve``, the
    original's ``>=``)."""

    def __init__(self, patience: int = 50, min_epochs: int = 0, metric: str = "avgf1",
                 min_delta: float = 0.0, ties_improve: bool = False):
        self.patience, self.min_epochs = patience, min_epochs
        self.metric, self.min_delta, self.ties_improve = metric, min_delta, ties_improve
        self.best: Optional[float] = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.improved = False

    def step(self, epoch: int, value: float) -> bool:
        self.improved = is_better(self.metric, value, self.best, self.min_delta, self.ties_improve)
        if self.improved:
            self.best, self.best_epoch, self.bad_epochs = float(value), epoch, 0
        else:
            self.bad_epochs += 1
        if self.patience <= 0 or epoch + 1 < self.min_epochs:
            return False
        return self.bad_epochs >= self.patience

    def reset_patience(self) -> None:
        """Used when the backbone is released: the new capacity gets a fresh patience."""
        self.bad_epochs = 0

    def state_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
