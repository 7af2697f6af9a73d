"""Atomic writes and small on-disk records shared by every stage.

Every output goes to a temporary file in the destination folder and is renamed into
place, so an interrupted run never leaves a half-written file that a rerun would trust.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Union

import numpy as np
import yaml

PathLike = Union[str, os.PathLike]

# mkstemp creates 0600 files; outputs should get the permissions any other new file would.
_UMASK = os.umask(0)
os.umask(_UMASK)


def files_umask() -> int:
    """The process umask (read once at import; os.umask can only be read by setting it)."""
    return _UMASK


def temporary_path(dest: PathLike, suffix: str = "") -> Path:
    """A new empty file next to ``dest`` (``.<name>.*<suffix>.tmp``) with the permissions any
    new file gets under the umask (mkstemp's 0600 would hide outputs from the group)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=(suffix or "") + ".tmp", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(dest: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` on success.

    On any exception (including a full disk) the temporary file is removed and
    ``dest`` is left as it was.
    """
    tmp_path = temporary_path(dest, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(dest: PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def write_text(dest: PathLike, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: PathLike, obj: Any, indent: int = 2) -> None:
    write_text(dest, json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default) + "\n")


def write_jsonl(dest: PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write(json.dumps(row, ensure_ascii=False, default=_json_default))
        buf.write("\n")
    write_text(dest, buf.getvalue())


def read_jsonl(path: PathLike) -> list:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON line ({exc})") from None
    return rows


def write_yaml(dest: PathLike, obj: Any) -> None:
    write_text(dest, yaml.safe_dump(_plain(obj), sort_keys=False, allow_unicode=True))


def save_npy(dest: PathLike, array: np.ndarray, check_finite: bool = True) -> None:
    """Save one array atomically; refuse NaN/inf so bad features never reach training."""
    array = np.asarray(array)
    if check_finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{dest}: refusing to write {bad} non-finite values")
    with atomic_path(dest, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
            fh.flush()
            os.fsync(fh.fileno())


def config_hash(obj: Any) -> str:
    """Stable short hash of a JSON-able object (used as the key of status records and caches)."""
    blob = json.dumps(_plain(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def plain(obj: Any) -> Any:
    """``obj`` as YAML/JSON-ready builtins (dataclasses, paths, numpy scalars converted)."""
    return _plain(obj)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_yaml(path: PathLike, error: type = ValueError, what: str = "file", name: Optional[str] = None) -> Dict[str, Any]:
    """The one YAML loader: a mapping (empty file = {}), or ``error`` with a message naming the file.

    ``what`` names the file's role in the "not found" message ("config file", "prompt file");
    ``name`` is how the file is called in the other messages (default: its path). YAML syntax
    errors keep PyYAML's line and column.
    """
    path = Path(path)
    name = name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{name}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{name}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{name}: the top level must be a mapping")
    return data


def read_json(path: PathLike, missing: Optional[str] = None, required: Iterable[str] = ()) -> Dict[str, Any]:
    """A JSON object with the ``required`` keys; errors name the file.

    FileNotFoundError (with ``missing`` as its message when given) for an absent file, ValueError
    for invalid JSON or a missing key."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(missing or f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    for key in required:
        if key not in data:
            raise ValueError(f"{path}: missing {key!r}")
    return data

