"""Faces resized to the training size once per video, not once per window and epoch.

The release stores faces at 256 px (``video.npy``, about 180 GB); training resizes them to
``--face_resize`` (48, or 124 with a backbone path). Done per window, every frame is read at
256 px and resized again for every window it is in (one to W/H of them: up to 14 with the
README's W=696, H=48), in every epoch and every run, and on a GPU run each window's 137 MB of
256 px faces also crosses to the device. Here each video is resized once, by the function the
per-window path uses (``resize_faces``: the batches are the same to the bit), into
``<folder>/faces-<size>px-<key>.npy``, and the loaders read that file instead (48 px: 7 kB a
frame instead of 197 kB). Building it costs about one pass of resizing over the data; every
later epoch, and every other run with the same faces and settings, reads the small file.

* key: a hash of the source file (resolved path, size in bytes, mtime), the target size and
  the resize method (``--compat``'s Pillow-exact, or the default): a re-extracted video or
  another setting never reads a stale file;
* atomic: written to a temporary file and renamed; a killed build leaves at most a
  ``.faces-*.tmp`` file, and the next run resizes that video again;
* shared: one lock file per video, so the ranks of a DDP job, the tasks of a SLURM array and
  runs sharing a dataset resize each video once between them; a process that finds a video
  locked goes on with the others, then waits for it (a lock whose owner died on this host is
  broken at once, one held from another host after ``LOCK_STALE_S``);
* parallel: videos are resized in worker processes (``workers``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bah.core.files import atomic_path, config_hash, temporary_path
from bah.core.lock import FileLock
from bah.core.progress import progress_bar
from bah.train.augmentation import resize_faces
from bah.train.dataset import DataError

log = logging.getLogger(__name__)

VERSION = 1
LOCK_STALE_S = 3600.0  # one video takes seconds; an hour-old lock from another host is dead
CHUNK = 256  # frames resized at a time: bounded memory for any video length


class FaceCacheError(DataError):
    pass


@dataclass(frozen=True)
class FaceCache:
    folder: Path
    size: int
    pil_exact: bool

    def target(self, src: Path) -> Path:
        st = src.stat()
        key = config_hash({"version": VERSION, "source": str(src.resolve()), "bytes": st.st_size,
                           "mtime_ns": st.st_mtime_ns, "size": self.size, "pil_exact": self.pil_exact})
        return self.folder / f"faces-{self.size}px-{key}.npy"

    def check_writable(self) -> None:
        try:
            temporary_path(self.folder / "write-test").unlink()
        except OSError as exc:
            raise FaceCacheError(f"cannot write the face cache in {self.folder} ({exc.strerror}): give "
                                 f"--face_cache DIR (a writable folder) or --face_cache off") from None

    def build(self, src: Path, dst: Path) -> str:
        """Resize ``src`` into ``dst``: 'built', 'present' (done before) or 'busy' (locked by another process)."""
        if dst.exists():
            return "present"
        lock = FileLock(dst.with_name(dst.name + ".lock"), stale_after=LOCK_STALE_S)
        if not lock.try_acquire():
            return "busy"
        try:
            if dst.exists():
                return "present"
            faces = np.load(src, mmap_mode="r")
            if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8:
                raise FaceCacheError(f"{src}: faces must be (N,H,W,3) uint8, found {faces.shape} {faces.dtype}")
            with atomic_path(dst, ".npy") as tmp:
                out = None
                for i in range(0, len(faces), CHUNK):
                    x = torch.from_numpy(np.array(faces[i:i + CHUNK])).permute(0, 3, 1, 2)
                    y = resize_faces(x, self.size, self.pil_exact).to(torch.uint8).permute(0, 2, 3, 1)
                    if out is None:
                        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                                        shape=(len(faces),) + tuple(y.shape[1:]))
                    out[i:i + len(y)] = y.numpy()
                if out is None:
                    with open(tmp, "wb") as fh:
                        np.save(fh, np.zeros((0, self.size, self.size, 3), np.uint8))
                else:
                    out.flush()
                    del out
            return "built"
        finally:
            lock.release()


class _Builds(Dataset):
    def __init__(self, cache: FaceCache, jobs: Sequence[tuple]):
        self.cache, self.jobs = cache, list(jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> tuple:
        src, dst = self.jobs[i]
        try:
            return i, self.cache.build(src, dst), ""
        except (OSError, ValueError) as exc:
            return i, "failed", str(exc)


def stored_size(src: Path) -> int:
    """The shorter side of the faces in ``src`` (reads the .npy header only); -1 when that is not
    an (N,H,W,C) array or not readable: such a video is left to the dataset's checks, which name
    every bad video of the split at once."""
    try:
        a = np.load(src, mmap_mode="r")
    except (OSError, ValueError):
        return -1
    return int(min(a.shape[1:3])) if a.ndim == 4 else -1


def prepare(cache: FaceCache, sources: Sequence[Path], workers: int = 0, progress: bool = True,
            poll_s: float = 2.0, strict: bool = True) -> Dict[Path, Path]:
    """The cached file for each source whose faces are not ``cache.size`` px already (built now
    where missing); sources already at that size are not in the result. An unwritable folder is
    an error when ``strict`` (the user named it), else a warning, and the videos not cached yet
    are resized every window as without a cache (a read-only dataset must not stop training)."""
    out: Dict[Path, Path] = {}
    jobs = []
    for src in dict.fromkeys(Path(s) for s in sources):
        if src.exists() and stored_size(src) not in (cache.size, -1):
            out[src] = dst = cache.target(src)
            if not dst.exists():
                jobs.append((src, dst))
    if not jobs:
        return out
    try:
        cache.check_writable()
    except FaceCacheError as exc:
        if strict:
            raise
        log.warning("%s; resizing the faces of every window instead", exc)
        return {s: d for s, d in out.items() if d.exists()}
    log.info("face cache: resizing %d video(s) to %d px once, into %s", len(jobs), cache.size, cache.folder)
    failed, busy = [], []
    loader = DataLoader(_Builds(cache, jobs), batch_size=None, num_workers=min(workers, len(jobs)))
    for i, status, err in progress_bar(loader, total=len(jobs), desc=f"faces to {cache.size} px", unit="video",
                                       disable=not progress):
        if status == "failed":
            failed.append(err)
        elif status == "busy":
            busy.append(jobs[i])
    if busy:
        log.info("face cache: waiting for %d video(s) another process is resizing", len(busy))
    while busy:
        time.sleep(poll_s)
        still = []
        for src, dst in busy:
            status = cache.build(src, dst)  # takes over when the other process died or gave up
            if status == "busy":
                still.append((src, dst))
        busy = still
    if failed:
        raise FaceCacheError(f"{len(failed)} video(s) could not be resized:\n  " + "\n  ".join(failed[:20]))
    return out
