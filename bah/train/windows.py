"""Windows over a video's frames, padding rows and overlap stitching (the original's rules).

- Starts are 0, H, 2H, ... while start + W <= N, plus a tail window [N-W, N) when the last
  window does not reach frame N-1; a video with N <= W is one window [0, N).
- A window shorter than W is padded by repeating its last row (every modality, labels too).
- Windowed inference adds the logits of every window and divides by the per-frame coverage.
"""
from __future__ import annotations

import random
from typing import List, Sequence, Tuple

import numpy as np

Window = Tuple[int, int]  # half-open [start, end)


def window_bounds(n: int, window: int, hop: int) -> List[Window]:
    if n < 1:
        raise ValueError(f"a video needs at least one frame, got N={n}")
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1, got W={window}, H={hop}")
    if n <= window:
        return [(0, n)]
    out = [(s, s + window) for s in range(0, n - window + 1, hop)]
    if out[-1][1] < n:
        out.append((n - window, n))
    return out


def item_rows(start: int, end: int, length: int) -> np.ndarray:
    """Source rows of a ``length``-long item cut from [start, end): the last row repeats."""
    rows = np.arange(start, end, dtype=np.int64)
    if len(rows) < length:
        rows = np.concatenate([rows, np.full(length - len(rows), end - 1, dtype=np.int64)])
    return rows


def item_index(start: int, end: int, length: int) -> np.ndarray:
    """The ``index`` the original Dataset returns: arange(length) once padded, else the rows."""
    if end - start < length:
        return np.arange(length, dtype=np.int64)
    return np.arange(start, end, dtype=np.int64)


def train_items(lengths: Sequence[int], window: int, hop: int, seed: int = 0,
                shuffles: int = 100) -> List[Tuple[int, int, int]]:
    """(video index, start, end) of every training window, in the original's order:
    videos in split order, then the list shuffled ``shuffles`` times with Python ``random``
    seeded by ``seed`` (shuffles=0 keeps the natural order)."""
    items = [(v, s, e) for v, n in enumerate(lengths) for s, e in window_bounds(int(n), window, hop)]
    if shuffles:
        rng = random.Random(seed)
        for _ in range(shuffles):
            rng.shuffle(items)
    return items


def stitch(window_logits: Sequence[np.ndarray], bounds: Sequence[Window], n: int) -> np.ndarray:
    """Average overlapping windows' outputs per frame; frames no window covers stay 0."""
    if not window_logits:
        raise ValueError("no windows to stitch")
    c = window_logits[0].shape[-1]
    acc = np.zeros((n, c), dtype=np.float64)
    cover = np.zeros(n, dtype=np.float64)
    for out, (s, e) in zip(window_logits, bounds):
        acc[s:e] += np.asarray(out, dtype=np.float64)[: e - s]
        cover[s:e] += 1
    nz = cover > 0
    acc[nz] /= cover[nz, None]
    return acc.astype(window_logits[0].dtype if np.issubdtype(window_logits[0].dtype, np.floating) else np.float32)
