"""Read the original's pickle files without running code from them.

``dataset_info.pkl``, ``dataset_info_<ds>_<split>_<P>_<p>.pkl`` and ``prediction-<split>.pkl``
travel between lab-mates and clusters; ``pickle.load`` on such a file runs whatever callable
it names. These files only ever hold plain containers, strings, numbers and numpy arrays, so
the unpickler here resolves only the handful of globals those need and refuses every other
one, naming the file. A plain ``pickle.load`` of a file from elsewhere is never right in bah.
"""
from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Tuple, Union

PathLike = Union[str, os.PathLike]


class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global outside the allow-list (code, or an unexpected type)."""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles of numpy arrays store their bytes as _codecs.encode(str, "latin1");
    # only text codecs are allowed so a crafted file cannot reach the binary codecs.
    if codecs.lookup(encoding).name not in ("latin-1", "iso8859-1", "utf-8", "ascii"):
        raise UnsafePickleError(f"codec {encoding!r} not allowed")
    return codecs.encode(text, encoding)


def _allowed() -> Dict[Tuple[str, str], Callable[..., Any]]:
    import collections

    import numpy as np

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: Dict[Tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    # Files written under numpy 1.x name numpy.core, under 2.x numpy._core: both mean the same.
    for pkg in ("numpy.core", "numpy._core"):
        table[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    for mod in ("builtins", "__builtin__"):
        for name, obj in (("set", set), ("frozenset", frozenset), ("complex", complex),
                          ("bytearray", bytearray), ("slice", slice)):
            table[(mod, name)] = obj
    return table


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: io.BufferedIOBase, source: str):
        super().__init__(fh)
        self._source = source
        self._table = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refuses to load {module}.{name}: only plain containers and numpy "
                f"arrays are read from pickle files (the file may carry code; do not use it)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed in a data pickle")


def load_pickle(path: PathLike) -> Any:
    """Unpickle ``path`` allowing only containers, scalars, strings and numpy arrays/dtypes.

    Raises ``FileNotFoundError`` for a missing file and ``pickle.UnpicklingError`` (the
    subclass ``UnsafePickleError`` for a refused global) naming the file for anything else.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            return _Unpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, UnicodeDecodeError) as exc:
            raise pickle.UnpicklingError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None


def loads_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """``load_pickle`` for bytes already in memory; ``source`` names them in errors."""
    return _Unpickler(io.BytesIO(data), source).load()
