"""``bah status OUT``: what every stage and block of an output folder did.

Reads only the bookkeeping the stages write under ``OUT/stages/<stage>/`` (per-video status
records, per-block records, failure lists) and the manifest, so it is cheap enough to run
while an array job is still going. Per stage it prints the videos done, failed (with the
reason) and missing (in the manifest, no record), and per block whether it finished, is
running, or started and never finished (killed, timed out, node lost).

Exit status: 0 when every stage is complete (nothing failed, missing or unfinished), 1
otherwise, 2 for a folder that is not a bah output folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from bah.core.config import ConfigError
from bah.core.lock import owner_alive


@dataclass
class BlockState:
    block: str
    nblocks: Optional[int]
    state: str  # finished | running | unfinished | unknown
    host: str = ""
    pid: Optional[int] = None
    started: str = ""
    finished: str = ""
    counts: Dict[str, Any] = field(default_factory=dict)


@dataclass
class StageSummary:
    stage: str
    done: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)  # video id -> reason
    missing: List[str] = field(default_factory=list)
    blocks: List[BlockState] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed and not self.missing and all(b.state == "finished" for b in self.blocks)


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stage_folders(out: Path) -> List[Path]:
    """Folders under ``out/stages`` that hold per-video records (``features/<extractor>`` included)."""
    root = Path(out) / "stages"
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_dir() and ((p / "status").is_dir() or (p / "blocks").is_dir()))


def block_state(rec: Dict[str, Any]) -> BlockState:
    state = rec.get("state", "unknown")
    if state == "running" and owner_alive(rec) is False:
        state = "unfinished"  # its process is gone from this host
    return BlockState(str(rec.get("block")), rec.get("nblocks"), state, str(rec.get("host", "")), rec.get("pid"),
                      str(rec.get("started", "")), str(rec.get("finished", "")), dict(rec.get("counts") or {}))


def summarize_stage(folder: Path, out: Path, expected: Optional[List[str]]) -> StageSummary:
    s = StageSummary(folder.relative_to(Path(out) / "stages").as_posix())
    for path in sorted((folder / "status").rglob("*.json")) if (folder / "status").is_dir() else []:
        rec = _read_json(path)
        if not rec or "video_id" not in rec:
            continue
        if rec.get("status") == "done":
            s.done.append(rec["video_id"])
        elif rec.get("status") == "failed":
            s.failed[rec["video_id"]] = str(rec.get("reason", ""))
    for path in sorted((folder / "blocks").glob("block*.json")) if (folder / "blocks").is_dir() else []:
        rec = _read_json(path)
        if rec:
            s.blocks.append(block_state(rec))
    s.blocks.sort(key=lambda b: (len(b.block), b.block))
    if expected is not None:
        seen = set(s.done) | set(s.failed)
        s.missing = [v for v in expected if v not in seen]
    return s


def summarize(out: Path) -> Dict[str, Any]:
    out = Path(out)
    from bah.stages.manifest import load_manifest

    try:
        records = load_manifest(out)
    except FileNotFoundError:
        records = None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    expected: Optional[List[str]] = None if records is None else [r.video_id for r in records]
    folders = stage_folders(out)
    if expected is None and not folders:
        raise ConfigError(f"{out}: no manifest.jsonl and no stages/ folder: not a bah output folder "
                          f"(run `bah manifest --data-root DIR --out {out}` first)")
    unreadable = {} if records is None else {r.video_id: str(r.error) for r in records if not r.ok}
    return {"out": str(out), "videos": None if expected is None else len(expected), "unreadable": unreadable,
            "stages": [summarize_stage(f, out, expected) for f in folders]}


def _describe_block(b: BlockState) -> str:
    of = f"/{b.nblocks}" if b.nblocks else ""
    where = f"{b.host} pid {b.pid}" if b.host else "unknown host"
    if b.state == "finished":
        counts = ", ".join(f"{k} {v}" for k, v in b.counts.items() if k in ("done", "skipped", "failed", "busy"))
        return f"block {b.block}{of}: finished {b.finished} on {b.host} ({counts})"
    if b.state == "unfinished":
        return f"block {b.block}{of}: STARTED, NEVER FINISHED (started {b.started} on {where}; process gone)"
    if b.state == "running":
        return (f"block {b.block}{of}: running, or killed without a trace (started {b.started} on {where}; "
                f"cannot check that host from here)" if owner_alive({"host": b.host, "pid": b.pid}) is None
                else f"block {b.block}{of}: running (started {b.started} on {where})")
    return f"block {b.block}{of}: {b.state}"


def render(summary: Dict[str, Any], limit: int = 10) -> str:
    n = summary["videos"]
    bad = summary.get("unreadable") or {}
    lines = [f"{summary['out']}: " + (f"{n} videos in the manifest" if n is not None else "no manifest")
             + (f", {len(bad)} of them unreadable (stages/manifest/failures.jsonl)" if bad else "")]
    if not summary["stages"]:
        lines.append("  no stage has run yet")
    for s in summary["stages"]:
        missing = f", {len(s.missing)} missing" if n is not None else ""
        lines.append(f"{s.stage}: {len(s.done)} done, {len(s.failed)} failed{missing}"
                     + ("" if s.complete else "  [incomplete]"))
        lines += [f"  {_describe_block(b)}" for b in s.blocks]
        for vid, reason in list(s.failed.items())[:limit]:
            lines.append(f"  failed  {vid}: {reason}")
        if len(s.failed) > limit:
            lines.append(f"  ... {len(s.failed) - limit} more failed (--all lists every one)")
        for vid in s.missing[:limit]:
            lines.append(f"  missing {vid}")
        if len(s.missing) > limit:
            lines.append(f"  ... {len(s.missing) - limit} more missing (--all lists every one)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("status")
    g.add_argument("folder", nargs="?", default=None, help="the output folder (default: --out / BAH_OUT)")
    g.add_argument("--all", action="store_true", help="list every failed and missing video, not the first 10")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args

    out = Path(args.folder) if args.folder else config_from_args(args).out
    if not out.is_dir():
        raise ConfigError(f"{out}: no such folder")
    summary = summarize(out)
    if args.json:
        doc = dict(summary, stages=[asdict(s) for s in summary["stages"]])
        print(json.dumps(doc, indent=2))
    else:
        print(render(summary, limit=sys.maxsize if args.all else 10))
    return 0 if all(s.complete for s in summary["stages"]) and summary["stages"] else 1
