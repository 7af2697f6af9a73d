"""Checkpoints: one schema, written atomically, verified before loading.

The dict holds ``model, optimizer, lr_scheduler, scaler, epoch, best_metric, best_epoch,
early_stopping, rng, history, options``. It is written to a temporary file and renamed, then
a ``.sha256`` sidecar is written; a file whose digest disagrees (truncated, corrupted) is
refused with a clear error instead of being loaded. A full disk while saving leaves the
previous checkpoint as it was.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from bah.core.files import atomic_path, write_text


class CheckpointError(RuntimeError):
    pass


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        digest = _digest(tmp)
    write_text(path.with_name(path.name + ".sha256"), digest + "\n")


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    side = path.with_name(path.name + ".sha256")
    if side.exists() and side.read_text().strip() != _digest(path):
        raise CheckpointError(f"{path}: corrupted checkpoint (sha256 differs from {side.name}); not loaded")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); not loaded") from None


def rng_state() -> Dict[str, Any]:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: Optional[Dict[str, Any]]) -> None:
    if not st:
        return
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
