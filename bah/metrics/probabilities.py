"""Class probabilities from logits: the max-shifted float64 softmax, and the original's
unshifted one evaluated in the stored dtype (compat)."""
from __future__ import annotations

from typing import Any

import numpy as np

from bah.metrics.inputs import _to_numpy


def softmax(logits: Any) -> np.ndarray:
    """Max-shifted softmax over the last axis, in float64 (never NaN for finite logits)."""
    x = _to_numpy(logits, "logits").astype(np.float64)
    if x.ndim == 0:
        raise ValueError("logits: expected at least one axis of classes")
    c = x.shape[-1]
    if c > 16:
        x = x - x.max(axis=-1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(axis=-1, keepdims=True)
        return x
    # numpy reductions over a short last axis are ~20x slower than column-wise ufuncs;
    # with 2 classes this is the whole cost of scoring 10 M frames
    m = x[..., 0].copy()
    for k in range(1, c):
        np.maximum(m, x[..., k], out=m)
    x -= m[..., None]
    np.exp(x, out=x)
    total = x[..., 0].copy()
    for k in range(1, c):
        total += x[..., k]
    x /= total[..., None]
    return x


def legacy_softmax(logits: Any) -> np.ndarray:
    """The original's ``exp(x) / sum(exp(x))``: no max shift, evaluated in the stored dtype.

    Overflow gives inf / inf = NaN, exactly as in the original (float16 overflows above ~11.09).
    """
    x = _to_numpy(logits, "logits")
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x * 1.0)
        return e / np.sum(e, axis=1, keepdims=True)


def _class1_prob(lg: np.ndarray) -> np.ndarray:
    """Column 1 of :func:`softmax` for (n, 2) logits, bit for bit, without the (n, 2) temporaries.

    With the max shift, the larger logit's exponential is exactly 1, so
    p1 = 1 / (1 + e) when l1 >= l0 and e / (1 + e) otherwise, with e = exp(-|l1 - l0|).
    """
    d = lg[:, 1].astype(np.float64) - lg[:, 0].astype(np.float64)
    up = d >= 0
    e = np.abs(d, out=d)
    np.negative(e, out=e)
    np.exp(e, out=e)
    den = e + 1.0
    np.copyto(e, 1.0, where=up)
    e /= den
    return e


def _legacy_class1_prob(lg: np.ndarray) -> np.ndarray:
    """Column 1 of :func:`legacy_softmax` (same operations, same dtype, NaN on overflow)."""
    with np.errstate(over="ignore", invalid="ignore"):
        e0 = np.exp(lg[:, 0] * 1.0)
        e1 = np.exp(lg[:, 1] * 1.0)
        return e1 / (e0 + e1)
