"""Input checks shared by every metric: numpy (or torch) arrays in, clear errors naming the
argument and the first bad index out."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"{name} is required")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16; float32 holds it exactly
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def _labels(labels: Any, name: str = "labels") -> np.ndarray:
    y = _to_numpy(labels, name).reshape(-1)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            bad = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(f"{name}: non-finite value at index {bad}")
    y_int = y.astype(np.int64)
    if y.dtype.kind in "fc" and not np.array_equal(y_int, y):
        bad = int(np.flatnonzero(y_int != y)[0])
        raise ValueError(f"{name}: labels must be 0 or 1, found {y[bad]!r} at index {bad}")
    bad_mask = (y_int != 0) & (y_int != 1)
    if bad_mask.any():
        bad = int(np.flatnonzero(bad_mask)[0])
        raise ValueError(f"{name}: labels must be 0 or 1, found {y_int[bad]} at index {bad}")
    return y_int


def _two_columns(x: Any, name: str, n: int) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim == 0 or a.shape[-1] != 2:
        raise ValueError(f"{name}: expected shape (..., 2) for 2 classes, got {tuple(a.shape)}")
    a = a.reshape(-1, 2)
    if a.shape[0] != n:
        raise ValueError(f"{name}: {a.shape[0]} rows but labels has {n} frames")
    return a


def _mask(mask: Any, n: int) -> Optional[np.ndarray]:
    if mask is None:
        return None
    m = _to_numpy(mask, "mask").reshape(-1)
    if m.shape[0] != n:
        raise ValueError(f"mask: {m.shape[0]} entries but labels has {n} frames")
    return m.astype(bool)


def _check_finite(s: np.ndarray, name: str) -> None:
    if s.dtype.kind == "f" and not np.isfinite(s).all():
        bad_rows = ~np.isfinite(s).reshape(s.shape[0], -1).all(axis=1) if s.ndim else np.array([True])
        bad = np.flatnonzero(bad_rows)
        raise ValueError(f"{name}: {bad.size} frames with non-finite values (first at index {int(bad[0])})")


def _select(a: Optional[np.ndarray], m: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return a if a is None or m is None else a[m]
