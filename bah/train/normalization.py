"""Per-dimension mean/std of the feature modalities, computed once and cached.

Statistics come from the training split only (``--compat``: train + val, as the original).
One streaming pass per file with Chan's pairwise merge in float64 (the original made two).
The cache file name is a hash of the video ids, their files' sizes and mtimes, the modalities
and the settings, so a changed split or re-extracted feature is never served stale stats.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from bah.core.progress import progress_bar

from bah.core.files import atomic_path, config_hash

log = logging.getLogger(__name__)


@dataclass
class Stats:
    mean: np.ndarray
    std: np.ndarray
    count: int


class RunningStats:
    """Chan et al. parallel mean/variance, merged chunk by chunk (float64)."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = np.zeros(dim, np.float64)
        self.m2 = np.zeros(dim, np.float64)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        nb = len(x)
        if nb == 0:
            return
        mb = x.mean(0)
        m2b = ((x - mb) ** 2).sum(0)
        delta = mb - self.mean
        n = self.n + nb
        self.mean = self.mean + delta * nb / n
        self.m2 = self.m2 + m2b + delta ** 2 * self.n * nb / n
        self.n = n

    def result(self) -> Stats:
        if self.n < 2:
            raise ValueError("normalisation statistics need at least two frames")
        return Stats(self.mean.astype(np.float32), np.sqrt(self.m2 / (self.n - 1)).astype(np.float32), self.n)


def stats_key(folders: Sequence[Path], modalities: Sequence[str], settings: Mapping) -> str:
    facts = []
    for folder in folders:
        for m in modalities:
            f = Path(folder) / f"{m}.npy"
            st = f.stat() if f.exists() else None
            facts.append((str(folder), m, st.st_size if st else -1, st.st_mtime_ns if st else -1))
    return config_hash({"files": facts, "modalities": list(modalities), "settings": dict(settings)})


def compute_stats(folders: Sequence[Path], modalities: Sequence[str], progress: bool = True) -> Dict[str, Stats]:
    acc: Dict[str, RunningStats] = {}
    for folder in progress_bar(folders, desc="normalisation stats", unit="video", disable=not progress):
        for m in modalities:
            f = Path(folder) / f"{m}.npy"
            if not f.exists():
                continue  # the dataset decides whether a missing file is fatal
            x = np.load(f, mmap_mode="r")
            if x.ndim == 1:
                x = x.reshape(-1, 1)
            x = np.asarray(x, np.float64).reshape(len(x), -1)
            if not np.isfinite(x).all():
                raise ValueError(f"{f}: NaN or inf values")
            acc.setdefault(m, RunningStats(x.shape[1])).update(x)
    missing = [m for m in modalities if m not in acc]
    if missing:
        raise FileNotFoundError(f"no {', '.join(m + '.npy' for m in missing)} in any training video")
    return {m: r.result() for m, r in acc.items()}


def load_or_compute_stats(folders: Sequence[Path], modalities: Sequence[str], cache_dir: Optional[Path],
                          settings: Mapping, progress: bool = True) -> Dict[str, Stats]:
    """Stats per modality, from ``cache_dir/mean_std-<key>.npz`` when it matches."""
    if not modalities:
        return {}
    key = stats_key(folders, modalities, settings)
    path = Path(cache_dir) / f"mean_std-{key}.npz" if cache_dir else None
    if path is not None and path.exists():
        try:
            return read_stats(path, modalities)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable stats cache %s (%s)", path, exc)
    stats = compute_stats(folders, modalities, progress)
    if path is not None:
        try:
            write_stats(path, stats)
        except OSError as exc:  # a read-only dataset folder must not stop training
            log.warning("could not cache stats at %s (%s)", path, exc)
    return stats


def write_stats(path: Path, stats: Mapping[str, Stats]) -> None:
    # npz without object arrays: the cache sits in a shared dataset folder and must not carry code
    arrays = {}
    for m, s in stats.items():
        arrays[f"{m}/mean"], arrays[f"{m}/std"] = s.mean, s.std
        arrays[f"{m}/count"] = np.asarray(s.count, np.int64)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def read_stats(path: Path, modalities: Sequence[str]) -> Dict[str, Stats]:
    with np.load(path, allow_pickle=False) as z:
        return {m: Stats(z[f"{m}/mean"], z[f"{m}/std"], int(z[f"{m}/count"])) for m in modalities}


def normalise(x: np.ndarray, s: Stats, compat: bool) -> np.ndarray:
    """(x - mean) / std in float32, a new array: two passes, no float64 temporaries. Float32
    arithmetic with the stats rounded to float32 is what the original's ``Normalize`` did on
    its float32 tensors, so under ``--compat`` the result is the original's to the bit."""
    # the original divided by the raw std; a constant dimension then gives inf/NaN
    std = s.std if compat else np.maximum(s.std, 1e-6)
    out = np.subtract(x, s.mean.astype(np.float32), dtype=np.float32)
    return np.divide(out, std.astype(np.float32), out=out)
