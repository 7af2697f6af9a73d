"""Writing one video's faces straight into ``video.npy``: a memory-mapped temporary file,
preallocated (so a full disk fails at once with an error, not with SIGBUS later), renamed
into place only when every row is written."""
from __future__ import annotations

import contextlib
import errno
import mmap
import os
from pathlib import Path

import numpy as np

from bah.core.files import temporary_path


class FaceArrayWriter:
    """Rows are assigned with ``writer[i] = face``; ``commit()`` renames the file into place.

    Written pages of a shared file mapping count as the process's resident memory until they are
    dropped, so every ``release_every`` rows the mapping is flushed and its pages are released:
    memory stays flat whatever the length of the video.
    """

    release_every = 256

    def __init__(self, dest: os.PathLike, n: int, size: int):
        self.dest = Path(dest)
        self.tmp = temporary_path(self.dest)
        self.array = None
        self._written = 0
        try:
            self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
            _reserve(self.tmp)
        except BaseException:
            self.abort()
            raise

    def __setitem__(self, i, value):
        self.array[i] = value
        self._written += 1
        if self._written % self.release_every == 0:
            self.release()

    def release(self) -> None:
        """Write dirty pages to the file and drop the mapping's pages from memory."""
        self.array.flush()
        mm = getattr(self.array, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_DONTNEED)  # shared file mapping: the data stays in the file

    def __getitem__(self, i):
        return self.array[i]

    def commit(self) -> None:
        self.array.flush()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        self.array = None
        os.replace(self.tmp, self.dest)

    def abort(self) -> None:
        self.array = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def _reserve(path: Path) -> None:
    """Allocate the whole file now: a sparse memmap on a full disk would crash with SIGBUS."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # file system without fallocate
                    return
                raise OSError(exc.errno, f"cannot reserve {size} bytes for {path}: {os.strerror(exc.errno)}") from None
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path, name: str) -> int:
    """Delete temporaries a killed run left for ``name`` in ``folder``; return how many."""
    n = 0
    if folder.is_dir():
        for p in folder.glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                n += 1
    return n
