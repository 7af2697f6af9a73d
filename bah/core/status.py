"""Per-video status records and failure lists: what makes a stage resumable.

Each finished video gets ``<stage dir>/status/<video id>.json`` (written atomically) with the
hash of the settings that produced it; a rerun skips a video whose record matches unless
forced. Failures go to one JSON-Lines file per block, so several blocks can run at once on
one output folder; ``failures()`` gathers them all.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bah.core.files import read_jsonl, write_json, write_jsonl
from bah.core.layout import stage_dir


class StageStatus:
    def __init__(self, out: os.PathLike, stage: str, config_hash: str, block: str = "0"):
        self.root = stage_dir(out, stage)
        self.config_hash = config_hash
        self.block = block
        self._failures: List[Dict[str, Any]] = []

    def begin(self) -> None:
        """Start a fresh failure list for this block (a rerun retries earlier failures)."""
        self._failures = []
        (self.root / f"failures-block{self.block}.jsonl").unlink(missing_ok=True)

    def _record_path(self, video_id: str) -> Path:
        return self.root / "status" / (video_id + ".json")

    def record(self, video_id: str) -> Optional[Dict[str, Any]]:
        path = self._record_path(video_id)
        try:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(self, video_id: str) -> bool:
        rec = self.record(video_id)
        return bool(rec and rec.get("status") == "done" and rec.get("config_hash") == self.config_hash)

    def mark_done(self, video_id: str, **facts: Any) -> None:
        write_json(self._record_path(video_id), {
            "video_id": video_id, "status": "done", "config_hash": self.config_hash,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname(), **facts,
        })

    def mark_failed(self, video_id: str, reason: str, **facts: Any) -> None:
        rec = {"video_id": video_id, "status": "failed", "reason": reason,
               "config_hash": self.config_hash, "block": self.block, **facts}
        write_json(self._record_path(video_id), rec)
        self._failures.append(rec)
        write_jsonl(self.root / f"failures-block{self.block}.jsonl", self._failures)

    def failures(self) -> List[Dict[str, Any]]:
        rows: List[Dict[str, Any]] = []
        for path in sorted(self.root.glob("failures-block*.jsonl")):
            rows.extend(read_jsonl(path))
        return rows
