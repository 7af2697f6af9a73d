"""Early stopping on the validation metric: patience counted after ``min_epochs``."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional


class EarlyStopping:
    """``step(epoch, value) -> bool`` says whether to stop; ``improved`` says whether the value
    is the best so far (ties count as improvement when ``ties_improve``, the original's ``>=``)."""

    def __init__(self, patience: int = 50, min_epochs: int = 0, higher_is_better: bool = True,
                 min_delta: float = 0.0, ties_improve: bool = False):
        self.patience, self.min_epochs = patience, min_epochs
        self.higher_is_better, self.min_delta, self.ties_improve = higher_is_better, min_delta, ties_improve
        self.best: Optional[float] = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.improved = False

    def _better(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        d = value - self.best if self.higher_is_better else self.best - value
        return d >= self.min_delta if self.ties_improve else d > self.min_delta

    def step(self, epoch: int, value: float) -> bool:
        self.improved = self._better(value)
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
