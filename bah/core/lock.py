"""One lock file per unit of work, so copies of a job running at once share the work.

Two copies of one block (a requeued SLURM task while the first still runs, or a block
submitted twice) must not both work on the same video: each would see the other's partial
file and report a false failure. A lock is a file created with ``O_CREAT | O_EXCL``
(atomic on local and NFS file systems) holding its owner's host and pid. A lock whose owner
is a dead process on this host is stale and is broken; a lock held by another host is left
alone (its owner cannot be checked from here) unless it is older than ``stale_after``
seconds, which defaults to never.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

PathLike = Union[str, os.PathLike]
_EMPTY_GRACE_S = 60.0  # an owner killed between creating the file and writing its name


def owner_alive(owner: Dict[str, Any]) -> Optional[bool]:
    """True/False for an owner on this host, None when it runs elsewhere (cannot tell)."""
    if owner.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True  # exists under another user (or unreadable pid): assume alive
    return True


def read_owner(path: PathLike) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


class FileLock:
    """``try_acquire()`` once; ``release()`` (or the context manager) removes the file if still ours."""

    def __init__(self, path: PathLike, stale_after: Optional[float] = None):
        self.path = Path(path)
        self.stale_after = stale_after
        self.held = False
        self._me = {"host": socket.gethostname(), "pid": os.getpid()}

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # second try after breaking a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self._break_if_stale():
                    return False
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({**self._me, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, fh)
            self.held = True
            return True
        return False

    def _break_if_stale(self) -> bool:
        owner = read_owner(self.path)
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile
        if owner is None:
            stale = age > _EMPTY_GRACE_S
        else:
            alive = owner_alive(owner)
            stale = alive is False or (alive is None and self.stale_after is not None and age > self.stale_after)
        if not stale:
            return False
        # rename first: of two processes breaking the same lock only one rename succeeds
        grave = self.path.with_name(f"{self.path.name}.stale-{self._me['host']}-{self._me['pid']}")
        try:
            os.replace(self.path, grave)
        except FileNotFoundError:
            return True
        if read_owner(grave) != owner:
            # another process broke it first and took a fresh lock, which we just moved: put it back
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.link(grave, self.path)
            grave.unlink()
            return False
        with contextlib.suppress(FileNotFoundError):
            grave.unlink()
        return True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = read_owner(self.path)
        if owner is not None and {k: owner.get(k) for k in self._me} != self._me:
            return  # broken by someone who thought us dead; theirs now
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
