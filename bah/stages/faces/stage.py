"""``bah faces``: detect, align and pack the faces of every video of the manifest (one block).

Reads ``<out>/manifest.jsonl`` (``bah manifest``), takes the videos of ``--split`` and the block
``--nblocks/--process_block`` (or the SLURM array), and writes
``<out>/features/compacted_48/<video id>/video.npy`` + ``face_record.npz`` per video. Finished
videos have a status record and are skipped on rerun unless ``--force``; failures are listed in
``<out>/stages/faces/failures-block<b>.jsonl`` and never stop the block.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence

from bah.stages.faces.detector import DETECTORS
from bah.stages.faces.settings import FaceConfig
from bah.stages.faces.tracking import FILL_POLICIES
from bah.core.files import config_hash
from bah.core.layout import stage_dir, video_dir
from bah.core.shards import add_block_arguments, resolve_block, take_block
from bah.core.status import StageStatus, block_config_name

log = logging.getLogger(__name__)

STAGE = "faces"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoJob:
    """What the face stage needs of a manifest row."""

    video_id: str
    path: Path
    n_frames: int
    split: str = ""
    error: Optional[str] = None

    @classmethod
    def from_record(cls, rec: Any) -> "VideoJob":
        get = rec.get if isinstance(rec, dict) else (lambda k, d=None: getattr(rec, k, d))
        return cls(str(get("video_id")), Path(get("path")), int(get("n_frames") or 0),
                   str(get("split") or ""), get("error"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("videos")
    g.add_argument("--split", choices=SPLITS + ("all",), default="all", help="which split's videos (default all)")
    g.add_argument("--video", action="append", default=[], metavar="ID", help="only this video id (repeatable)")
    g.add_argument("--force", action="store_true", help="redo videos that already have a finished record")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_block_arguments(parser)
    f = parser.add_argument_group("faces (settings also under faces.* in --config / --set)")
    f.add_argument("--detector", choices=DETECTORS.list(), default=None, help="face detector (default hog)")
    f.add_argument("--size", type=int, default=None, help="side S of the aligned faces (default 128)")
    f.add_argument("--fill-policy", choices=FILL_POLICIES.list(), default=None,
                   help="frames without a face: backfill (default) or compat (original: full first frame, hold-last)")
    f.add_argument("--detect-every", type=int, default=None, help="run the detector every k frames (default 5)")
    f.add_argument("--jpeg", action="store_true", default=None, help="also write cropped_aligned/<id>/frame-<k>.jpg")
    f.add_argument("--compat", action="store_true",
                   help="byte-compatible with the release: size 256, compat fill policy and alignment estimator")


def config_overrides(args: argparse.Namespace) -> dict:
    ov = {}
    if getattr(args, "compat", False):
        ov.update({"faces.size": 256, "faces.fill_policy": "compat", "faces.compat_alignment": True})
    for flag, key in (("detector", "detector"), ("size", "size"), ("fill_policy", "fill_policy"),
                      ("detect_every", "detect_every"), ("jpeg", "jpeg")):
        value = getattr(args, flag, None)
        if value is not None:
            ov[f"faces.{key}"] = value
    return ov


def select_jobs(records: Iterable[Any], split: str = "all", video_ids: Sequence[str] = ()) -> List[VideoJob]:
    jobs = [VideoJob.from_record(r) for r in records]
    if split != "all":
        jobs = [j for j in jobs if j.split == split]
    if video_ids:
        wanted = set(video_ids)
        missing = wanted - {j.video_id for j in jobs}
        if missing:
            raise ValueError(f"video id(s) not in the manifest ({split}): {sorted(missing)}")
        jobs = [j for j in jobs if j.video_id in wanted]
    return jobs


def run_block(jobs: Sequence[VideoJob], out: Path, cfg: FaceConfig, block: str = "0", nblocks: Optional[int] = None,
              force: bool = False, progress: bool = True, aligner=None) -> dict:
    """Align every job (one block); return counts. One bad video never stops the others."""
    from bah.core.progress import progress_bar

    from bah.stages.faces.aligner import FaceAligner

    from bah.core.media import iter_frames

    status = StageStatus(out, STAGE, config_hash(cfg), block)
    status.begin(nblocks, [j.video_id for j in jobs])

    def finished(job: VideoJob) -> bool:
        return status.is_done(job.video_id) and (video_dir(out, job.video_id) / "video.npy").exists()

    todo = [j for j in jobs if force or not finished(j)]
    skipped = len(jobs) - len(todo)
    if skipped:
        log.info("faces block %s: %d of %d videos already done (use --force to redo)", block, skipped, len(jobs))
    counts = {"videos": len(jobs), "skipped": skipped, "done": 0, "failed": 0, "frames": 0, "busy": 0}
    if not todo:
        status.finish(**counts)
        return counts
    aligner = aligner or FaceAligner(cfg)
    bar = progress_bar(total=sum(max(j.n_frames, 0) for j in todo), unit="frame", desc=f"faces block {block}",
               disable=not progress, dynamic_ncols=True)
    t_block = time.perf_counter()
    try:
        for k, job in enumerate(todo):
            bar.set_postfix_str(f"video {k + 1}/{len(todo)}")
            facts = {"split": job.split, "path": str(job.path)}
            lock = status.claim(job.video_id)
            if lock is None or (not force and finished(job)):  # a twin copy of this block has it
                counts["busy" if lock is None else "skipped"] += 1
                if lock is not None:
                    lock.release()
                continue
            try:
                if job.error:
                    raise ValueError(f"the manifest marks this video unreadable: {job.error}")
                dest = video_dir(out, job.video_id)
                jpeg_dir = (out / "cropped_aligned" / job.video_id) if cfg.jpeg else None
                res = aligner.align_video(iter_frames(job.path), job.n_frames, dest, jpeg_dir=jpeg_dir,
                                          on_frame=bar.update)
            except (KeyboardInterrupt, SystemExit):
                lock.release()
                raise
            except Exception as exc:
                lock.release()
                reason = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, OSError) and exc.errno == 28:
                    reason = f"output disk full ({exc}); partial file removed"
                log.error("faces: %s (%s): FAILED: %s", job.video_id, job.path, reason)
                counts["failed"] += 1
                try:
                    status.mark_failed(job.video_id, reason, **facts)
                except OSError as exc2:  # the disk may still be full: say so and go on
                    log.error("faces: cannot write the failure record of %s: %s", job.video_id, exc2)
                continue
            status.mark_done(job.video_id, **facts, size=cfg.size, detector=cfg.detector, **res)
            lock.release()
            counts["done"] += 1
            counts["frames"] += res["n_frames"]
            extra = f"; decoder stopped at {res['decoded_frames']} ({res['decode_error']})" if res["decoded_frames"] < res["n_frames"] else ""
            log.info("faces: %s: %d frames, %d detected (%d by tracking), %d filled, %.1f frames/s%s",
                     job.video_id, res["n_frames"], res["n_detected"], res["n_tracked"], res["n_filled"],
                     res["fps"] or 0.0, extra)
    finally:
        bar.close()
    counts["seconds"] = round(time.perf_counter() - t_block, 2)
    status.finish(**counts)
    return counts


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args

    config = config_from_args(args, sections=[STAGE], overrides=config_overrides(args))
    cfg: FaceConfig = config[STAGE]
    out = config.out
    try:
        from bah.stages.manifest import load_manifest
    except ImportError as exc:
        log.error("bah faces needs the manifest module (bah.stages.manifest): %s", exc)
        return 2
    try:
        records = load_manifest(out)
    except FileNotFoundError:
        log.error("no manifest in %s: run `bah manifest --data-root ... --out %s` first", out, out)
        return 2
    try:
        jobs = select_jobs(records, args.split, args.video)
        nblocks, block = resolve_block(args.nblocks, args.process_block)
    except ValueError as exc:
        log.error("bah faces: %s", exc)
        return 2
    mine = list(take_block(jobs, nblocks, block))
    log.info("faces: %d videos (%s), block %d of %d: %d videos", len(jobs), args.split, block, nblocks, len(mine))
    config.save(stage_dir(out, STAGE) / block_config_name(block))
    counts = run_block(mine, out, cfg, block=str(block), nblocks=nblocks, force=args.force,
                       progress=not args.no_progress)
    log.info("faces block %d/%d: %s", block, nblocks, counts)
    if counts["failed"]:
        log.warning("faces: %d video(s) failed; see %s", counts["failed"],
                    stage_dir(out, STAGE) / f"failures-block{block}.jsonl")
        return 1
    return 0
