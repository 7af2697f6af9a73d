"""Decision thresholds for video probabilities, one registry of modes.

Every mode maps the selection predictions (validation or out-of-fold, never test) to one
threshold; a video is positive when ``p1 >= threshold``.

- ``fixed``: 0.5.
- ``base_rate``: the threshold at which the share of positive predictions equals the training
  base rate.
- ``plateau`` (default): macro F1 (AVGF1) is computed on the grid 0.01, 0.02, ..., 0.99 and
  smoothed with a centred moving average over ``SMOOTH_WINDOW`` = 5 grid points (the window
  shrinks at the ends); thresholds whose smoothed F1 is within ``TOLERANCE`` = 0.01 of the best
  smoothed F1 are near-best; the threshold is the centre of the widest run of consecutive
  near-best grid points (ties: the run holding the best smoothed F1, then the lower run),
  rounded to the grid. A broad plateau is stable from one split to the next; a raw peak on 124
  videos is mostly noise.
- ``argmax``: the raw best grid threshold (ties: the lowest). Optimistic: the run says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from bah.core.registry import Registry
from bah.metrics.frame import frame_metrics

__all__ = ["CALIBRATIONS", "Calibration", "GRID", "SMOOTH_WINDOW", "TOLERANCE", "f1_curve", "smooth",
           "plateau_threshold", "calibrate"]

GRID = np.round(np.arange(1, 100) / 100.0, 2)
SMOOTH_WINDOW = 5
TOLERANCE = 0.01


@dataclass(frozen=True)
class Calibration:
    name: str
    optimistic: bool
    choose: Callable[..., float]  # (probs, labels, base_rate) -> threshold
    description: str


CALIBRATIONS: Registry[Calibration] = Registry("calibration mode")


def f1_curve(labels: np.ndarray, probs: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Macro F1 (the paper's AVGF1, bah.metrics) of ``p1 >= t`` for every t of ``grid``."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    return np.array([frame_metrics(labels, preds=(probs >= t).astype(np.int64))["avgf1"] for t in grid])


def smooth(values: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average; near the ends the window shrinks (no padding invents values)."""
    values = np.asarray(values, dtype=np.float64)
    half = window // 2
    csum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(values.size)
    lo = np.maximum(idx - half, 0)
    hi = np.minimum(idx + half + 1, values.size)
    return (csum[hi] - csum[lo]) / (hi - lo)


def plateau_threshold(curve: np.ndarray, grid: np.ndarray = GRID, window: int = SMOOTH_WINDOW,
                      tolerance: float = TOLERANCE) -> Dict[str, float]:
    """Centre of the widest run of near-best thresholds on the smoothed curve.

    Returns ``threshold`` and the run's ``low`` / ``high`` ends (grid values).
    """
    s = smooth(curve, window)
    near = s >= s.max() - tolerance
    runs, start = [], None
    for i, ok in enumerate(np.append(near, False)):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i - 1))
            start = None
    best = int(np.argmax(s))
    lo, hi = max(runs, key=lambda r: (r[1] - r[0], r[0] <= best <= r[1], -r[0]))
    centre = (grid[lo] + grid[hi]) / 2.0
    return {"threshold": float(np.round(centre, 2)), "low": float(grid[lo]), "high": float(grid[hi])}


def _fixed(probs, labels, base_rate):
    return 0.5


def _base_rate(probs, labels, base_rate):
    p = np.sort(np.asarray(probs, dtype=np.float64))[::-1]
    k = int(round(base_rate * p.size))
    if k <= 0:
        return float(np.nextafter(p[0], np.inf))
    if k >= p.size:
        return float(p[-1])
    # halfway between the k-th and (k+1)-th largest: exactly k videos reach it (without ties)
    return float((p[k - 1] + p[k]) / 2.0)


def _plateau(probs, labels, base_rate):
    return plateau_threshold(f1_curve(labels, probs))["threshold"]


def _argmax(probs, labels, base_rate):
    return float(GRID[int(np.argmax(f1_curve(labels, probs)))])


for _c in (
    Calibration("fixed", False, _fixed, "0.5"),
    Calibration("base_rate", False, _base_rate, "positive rate = the training base rate"),
    Calibration("plateau", False, _plateau,
                f"centre of the widest near-best plateau (smoothing {SMOOTH_WINDOW} grid points, tolerance {TOLERANCE})"),
    Calibration("argmax", True, _argmax, "raw best threshold on the selection split (optimistic)"),
):
    CALIBRATIONS.register(_c.name, _c)


def calibrate(mode: str, probs: np.ndarray, labels: Optional[np.ndarray], base_rate: float) -> float:
    """The threshold of ``mode`` for selection predictions ``probs`` with ``labels``."""
    cal = CALIBRATIONS.get(mode)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.size == 0:
        raise ValueError("calibration: no selection predictions")
    if labels is not None and (np.asarray(labels) < 0).any():
        raise ValueError("calibration: the selection split has unlabelled videos")
    return float(cal.choose(probs, labels, base_rate))
