"""Per-video status records and failure lists: what makes a stage resumable.

Each finished video gets ``<stage dir>/status/<video id>.json`` (written atomically) with the
hash of the settings that produced it; a rerun skips a video whose record matches unless
forced. Failures go to one JSON-Lines file per block, so several blocks can run at once on
one output folder; ``failures()`` gathers them all.

Each block also keeps ``blocks/block<b>.json`` (running / finished, host, pid, counts), so
``bah status`` can tell a finished block from one that was killed, and each video being
worked on holds a lock file (``locks/<video id>.lock``): two copies of one block share the
videos instead of both writing the same files.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bah.core.files import read_jsonl, write_json, write_jsonl
from bah.core.layout import stage_dir
from bah.core.lock import FileLock, owner_alive


@dataclass
class StageResult:
    """What one block of a per-video stage did (features, video features, transcripts)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    busy: int = 0  # held by a twin copy of the block
    failures: List[Dict[str, Any]] = field(default_factory=list)
    # videos per repair or note: "vfr" (rows at recorded frame times), "clipped_timestamps"
    repairs: Dict[str, int] = field(default_factory=dict)


class StageStatus:
    def __init__(self, out: os.PathLike, stage: str, config_hash: str, block: str = "0"):
        self.root = stage_dir(out, stage)
        self.config_hash = config_hash
        self.block = block
        self._failures: List[Dict[str, Any]] = []

    @property
    def _block_path(self) -> Path:
        return self.root / "blocks" / f"block{self.block}.json"

    def block_record(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self._block_path, encoding="utf-8") as fh:
                return json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def begin(self, nblocks: Optional[int] = None, videos: Optional[List[str]] = None) -> None:
        """Start this block: record it as running and start a fresh failure list (a rerun
        retries earlier failures), unless another live copy of the block is running."""
        prev = self.block_record()
        twin = bool(prev and prev.get("state") == "running" and owner_alive(prev) is not False
                    and prev.get("pid") != os.getpid())
        self._failures = []
        if not twin:
            (self.root / f"failures-block{self.block}.jsonl").unlink(missing_ok=True)
        write_json(self._block_path, {
            "block": self.block, "nblocks": nblocks, "state": "running", "host": socket.gethostname(),
            "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "videos": list(videos) if videos is not None else None, "config_hash": self.config_hash})

    def finish(self, **counts: Any) -> None:
        """Mark the block finished (``bah status`` reports blocks that never get here)."""
        rec = self.block_record() or {"block": self.block}
        rec.update(state="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), host=socket.gethostname(),
                   pid=os.getpid(), counts=counts)
        write_json(self._block_path, rec)

    def claim(self, video_id: str) -> Optional[FileLock]:
        """The video's lock, or None when another process works on it now."""
        lock = FileLock(self.root / "locks" / (video_id + ".lock"))
        return lock if lock.try_acquire() else None

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
        path = self.root / f"failures-block{self.block}.jsonl"
        # a twin copy of this block may have listed its own failures: keep theirs
        theirs = [r for r in (read_jsonl(path) if path.exists() else []) if r not in self._failures]
        write_jsonl(path, theirs + self._failures)

    def failures(self) -> List[Dict[str, Any]]:
        rows: List[Dict[str, Any]] = []
        for path in sorted(self.root.glob("failures-block*.jsonl")):
            rows.extend(read_jsonl(path))
        return rows


def block_config_name(block: Any) -> str:
    """Each block records the configuration it ran with under its own name: blocks of one
    array never overwrite each other's record (``bah status`` and provenance read them all)."""
    return f"config-block{block}.yaml"


def claim_all(statuses: Sequence["StageStatus"], video_id: str) -> Optional[List[FileLock]]:
    """The video's lock in every one of ``statuses`` (one per extractor), or None, holding none,
    when a twin copy of the block holds any of them."""
    locks: List[FileLock] = []
    for st in statuses:
        lock = st.claim(video_id)
        if lock is None:
            for held in locks:
                held.release()
            return None
        locks.append(lock)
    return locks
