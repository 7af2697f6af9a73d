"""Checkpoints: one schema, written so that a kill at any instant leaves a loadable file.

The dict holds ``model, optimizer, lr_scheduler, scaler, epoch, best_metric, best_epoch,
early_stopping, rng, history, options``, all tensors and plain containers, so loading uses
``torch.load(weights_only=True)``: a checkpoint from someone else's folder cannot run code.

A ``.sha256`` sidecar catches truncated or corrupted files. Saving is a sequence of atomic
steps, and the sidecar lists every digest that may legitimately be on disk during it:

1. write the new file under a temporary name (fsynced);
2. rewrite the sidecar with the new digest *and* the current one;
3. rename the temporary file onto the checkpoint;
4. rewrite the sidecar with the new digest only.

A SIGKILL between any two steps leaves either the old or the new file, both listed, so the
run resumes (a leftover temporary file is removed by the next save). A full disk while
saving leaves the previous checkpoint as it was.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

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


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _listed(path: Path) -> List[str]:
    side = _sidecar(path)
    if not side.exists():
        return []
    return [line.strip() for line in side.read_text().splitlines() if line.strip()]


def _step(name: str) -> None:
    """Called between the steps of ``save_checkpoint``; tests replace it to kill the process there."""


def _plain(obj: Any) -> Any:
    # weights_only loading accepts tensors and builtin containers/scalars only
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    path = Path(path)
    state = _plain(state)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a kill during an earlier save
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    current = _listed(path)[:1] if path.exists() else []
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        with open(tmp, "rb+") as fh:  # on disk before the sidecar names it
            os.fsync(fh.fileno())
        _step("written")
        digest = _digest(tmp)
        write_text(_sidecar(path), "".join(d + "\n" for d in [digest, *current]))
        _step("sidecar-both")
    _step("renamed")
    write_text(_sidecar(path), digest + "\n")
    _step("done")


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    listed = _listed(path)
    if listed and _digest(path) not in listed:
        raise CheckpointError(f"{path}: corrupted checkpoint (sha256 differs from {_sidecar(path).name}); not loaded")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False; for a file from elsewhere that is the exploit
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"it names {found.group(1)}, " if found else ""
        raise CheckpointError(f"{path}: refuses to load: {what}which a bah checkpoint never holds "
                              f"(the file may carry code); not loaded") from None
    except Exception as exc:  # torch raises several types for truncated / foreign / code-carrying files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); not loaded") from None


def rng_state() -> Dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st = {"python": random.getstate(),
          "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "gauss": float(gauss)},
          "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: Optional[Dict[str, Any]]) -> None:
    if not st:
        return
    random.setstate(st["python"])
    npst = st["numpy"]
    np.random.set_state((npst["kind"], np.asarray(npst["keys"], np.int64).astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
