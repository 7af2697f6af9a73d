"""The one progress bar: tqdm that obeys ``--no-progress`` and ``TQDM_DISABLE``, and writes plain
periodic lines instead of carriage-return redraws when stderr is not a terminal (SLURM logs).

``bah --no-progress`` sets ``TQDM_DISABLE=1`` for the whole command. tqdm itself reads that
variable only at import and an explicit ``disable=False`` overrides it, hence this helper.
In a log file a line is written every ``BAH_PROGRESS_INTERVAL`` seconds (default 30).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Optional, TextIO

from tqdm import tqdm

_FALSE = ("", "0", "false", "no", "off")


def progress_disabled(disable: Optional[bool] = False) -> bool:
    return bool(disable) or os.environ.get("TQDM_DISABLE", "").strip().lower() not in _FALSE


class _Lines:
    """A stream for tqdm: each redraw becomes one line, empty redraws (clearing) are dropped."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        for piece in text.replace("\r", "\n").split("\n"):
            piece = piece.strip()
            if piece:
                self._stream.write(piece + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable: Optional[Iterable] = None, disable: Optional[bool] = False, **kw: Any) -> tqdm:
    """``tqdm(iterable, **kw)``, disabled by ``disable`` or TQDM_DISABLE, line-based off a terminal."""
    if progress_disabled(disable):
        return tqdm(iterable, disable=True, **kw)
    stream = kw.pop("file", None) or sys.stderr
    if not _is_terminal(stream):
        every = float(os.environ.get("BAH_PROGRESS_INTERVAL", "30"))
        kw.update(file=_Lines(stream), mininterval=every, maxinterval=max(every, 10.0), ascii=True,
                  dynamic_ncols=False, ncols=kw.get("ncols") or 100)
        return tqdm(iterable, **kw)
    return tqdm(iterable, file=stream, **kw)
