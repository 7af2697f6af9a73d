"""Response cache: a rerun, or the rest of an interrupted run, never pays for an answer twice.

One JSON line per answer, keyed by a hash of (backend identity, generation settings,
rendered prompt, inputs). The file is append-only on purpose: an answer is durable the moment
it arrives, which is what makes an interrupted run resumable. A line cut short by a crash is
skipped with a warning on the next read (it is simply asked again).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from bah.core.files import config_hash
from bah.apps.zeroshot.backend import Answer

log = logging.getLogger(__name__)

__all__ = ["ResponseCache", "cache_key"]


def cache_key(identity: Mapping[str, Any], generation: Mapping[str, Any], prompt_hash: str, input_hash: str) -> str:
    return config_hash({"backend": dict(identity), "generation": dict(generation), "prompt": prompt_hash,
                        "inputs": input_hash})


class ResponseCache:
    def __init__(self, path: Optional[os.PathLike]):
        self.path = Path(path) if path else None
        self._rows: Dict[str, Dict[str, Any]] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            with open(self.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        self._rows[row["key"]] = row["answer"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        log.warning("%s:%d: unreadable cache line skipped (interrupted write?)", self.path, lineno)

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> Optional[Answer]:
        row = self._rows.get(key)
        return Answer.from_dict(row) if row is not None else None

    def put(self, key: str, answer: Answer, **facts: Any) -> None:
        row = answer.to_dict()
        with self._lock:
            self._rows[key] = row
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"key": key, "answer": row, **facts}, ensure_ascii=False, default=str)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
