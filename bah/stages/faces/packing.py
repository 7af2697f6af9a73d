"""``bah pack-faces``: pack existing folders of ``frame-<k>.jpg`` crops into ``video.npy`` arrays.

For the release's own ``cropped-aligned-faces/<video id>/`` (or the original pipeline's
``cropped_aligned/``). Frames are ordered by the integer k; numbering may start at 0 (what the
original writes) or 1, and which one is reported per video; a gap in the numbering is an error.
Crops whose size differs from S are resized with PIL's default (bicubic), as the original did.
"""
from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.stages.faces.stage import SPLITS, VideoJob, select_jobs
from bah.stages.faces.writer import FaceArrayWriter, remove_stale_temporaries
from bah.core.files import config_hash
from bah.core.layout import stage_dir, video_dir
from bah.core.shards import add_block_arguments, resolve_block, take_block
from bah.core.status import StageStatus, block_config_name

log = logging.getLogger(__name__)

STAGE = "pack-faces"
FRAME_RE = re.compile(r"^frame-(\d+)\.jpe?g$", re.IGNORECASE)


class PackError(ValueError):
    """A crop folder that cannot be packed; the message names the folder and the problem."""


def frame_files(folder: Path) -> Tuple[List[Path], int]:
    """The crops of one video in frame order, and the first index (0 or 1)."""
    found: Dict[int, Path] = {}
    for p in folder.iterdir():
        m = FRAME_RE.match(p.name)
        if m:
            k = int(m.group(1))
            if k in found:
                raise PackError(f"{folder}: two files for frame {k}: {found[k].name}, {p.name}")
            found[k] = p
    if not found:
        raise PackError(f"{folder}: no frame-<k>.jpg files")
    ks = sorted(found)
    base = ks[0]
    if base not in (0, 1):
        raise PackError(f"{folder}: numbering starts at frame-{base}.jpg (expected 0 or 1)")
    if ks[-1] - base + 1 != len(ks):
        missing = sorted(set(range(base, ks[-1] + 1)) - set(ks))
        raise PackError(f"{folder}: {len(missing)} frame(s) missing, first frame-{missing[0]}.jpg")
    return [found[k] for k in ks], base


def pack_folder(folder: Path, dest: Path, size: int, n_expected: Optional[int] = None, on_frame=None) -> dict:
    """Pack one folder of crops into ``dest`` (N,S,S,3) uint8 RGB; return the facts."""
    from PIL import Image

    files, base = frame_files(folder)
    n = len(files)
    if n_expected is not None and n_expected > 0 and n != n_expected:
        raise PackError(f"{folder}: {n} crops but the manifest counts {n_expected} decoded frames")
    remove_stale_temporaries(dest.parent, dest.name)
    resized = 0
    t0 = time.perf_counter()
    with FaceArrayWriter(dest, n, size) as arr:
        for i, path in enumerate(files):
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if im.size != (size, size):
                        im = im.resize((size, size))  # PIL default filter (bicubic), as the original
                        resized += 1
                    arr[i] = np.asarray(im)
            except (OSError, ValueError) as exc:
                raise PackError(f"{path}: unreadable image ({exc})") from None
            if on_frame is not None:
                on_frame(1)
    return {"n_frames": n, "first_index": base, "resized": resized, "seconds": round(time.perf_counter() - t0, 3)}


def find_crop_folders(root: Path) -> List[str]:
    """Video ids (relative folder paths) of every folder under ``root`` holding frame-<k>.jpg files."""
    ids = set()
    for p in root.rglob("frame-*.jp*g"):
        if FRAME_RE.match(p.name):
            ids.add(p.parent.relative_to(root).as_posix())
    return sorted(ids)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("packing")
    g.add_argument("--faces-dir", default=None,
                   help="folder of <video id>/frame-<k>.jpg crops (default <out>/cropped_aligned, "
                        "else <data-root>/cropped-aligned-faces)")
    g.add_argument("--split", choices=SPLITS + ("all",), default="all",
                   help="videos of this split from the manifest (without a manifest: every crop folder)")
    g.add_argument("--size", type=int, default=None, help="side S of the packed faces (default faces.size)")
    g.add_argument("--force", action="store_true", help="repack videos that already have a finished record")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_block_arguments(parser)


def _faces_dir(args, config) -> Path:
    if args.faces_dir:
        return Path(args.faces_dir)
    for cand in (config.out / "cropped_aligned",
                 (config.data_root / "cropped-aligned-faces") if config.data_root else None):
        if cand is not None and cand.is_dir():
            return cand
    raise FileNotFoundError("no crop folder: pass --faces-dir DIR (e.g. the release's cropped-aligned-faces/)")


def pack_block(jobs: Sequence[VideoJob], faces_dir: Path, out: Path, size: int, block: str = "0",
               force: bool = False, progress: bool = True, nblocks: Optional[int] = None) -> dict:
    from bah.core.progress import progress_bar

    status = StageStatus(out, STAGE, config_hash({"size": size, "faces_dir": str(faces_dir)}), block)
    status.begin(nblocks, [j.video_id for j in jobs])
    counts = {"videos": len(jobs), "skipped": 0, "done": 0, "failed": 0, "busy": 0, "first_index": {}}
    bar = progress_bar(jobs, unit="video", desc=f"pack-faces part {block}", disable=not progress, dynamic_ncols=True)
    for job in bar:
        dest = video_dir(out, job.video_id) / "video.npy"
        if not force and status.is_done(job.video_id) and dest.exists():
            counts["skipped"] += 1
            continue
        lock = status.claim(job.video_id)
        if lock is None:  # a twin copy of this block packs it now
            counts["busy"] += 1
            continue
        try:
            if not force and status.is_done(job.video_id) and dest.exists():
                counts["skipped"] += 1
                continue
            res = pack_folder(faces_dir / job.video_id, dest, size, n_expected=job.n_frames or None)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error("pack-faces: %s: FAILED: %s", job.video_id, reason)
            counts["failed"] += 1
            try:
                status.mark_failed(job.video_id, reason)
            except OSError as exc2:
                log.error("pack-faces: cannot write the failure record of %s: %s", job.video_id, exc2)
            continue
        finally:
            lock.release()
        status.mark_done(job.video_id, size=size, **res)
        counts["done"] += 1
        key = str(res["first_index"])
        counts["first_index"][key] = counts["first_index"].get(key, 0) + 1
        log.info("pack-faces: %s: %d frames, numbered from %d, %d resized", job.video_id, res["n_frames"],
                 res["first_index"], res["resized"])
    status.finish(**{k: v for k, v in counts.items() if k != "first_index"})
    return counts


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args

    config = config_from_args(args, sections=["faces"],
                              overrides={"faces.size": args.size} if args.size else None)
    size = config["faces"].size
    out = config.out
    try:
        faces_dir = _faces_dir(args, config)
    except FileNotFoundError as exc:
        log.error("bah pack-faces: %s", exc)
        return 2
    jobs: List[VideoJob]
    try:
        from bah.stages.manifest import load_manifest

        jobs = select_jobs(load_manifest(out), args.split)
    except (ImportError, FileNotFoundError):
        if args.split != "all":
            log.error("--split needs the manifest (run `bah manifest` first) or use --split all")
            return 2
        jobs = [VideoJob(v, faces_dir / v, 0) for v in find_crop_folders(faces_dir)]
        log.info("pack-faces: no manifest; packing the %d crop folders under %s", len(jobs), faces_dir)
    try:
        nparts, part = resolve_block(args.nblocks, args.process_block)
    except ValueError as exc:
        log.error("bah pack-faces: %s", exc)
        return 2
    mine = list(take_block(jobs, nparts, part))
    config.save(stage_dir(out, STAGE) / block_config_name(part))
    counts = pack_block(mine, faces_dir, out, size, block=str(part), force=args.force, progress=not args.no_progress,
                        nblocks=nparts)
    bases = counts["first_index"]
    if bases:
        log.info("pack-faces: frame numbering starts at %s", ", ".join(f"{k} for {v} video(s)" for k, v in sorted(bases.items())))
    log.info("pack-faces part %d/%d: %s", part, nparts, counts)
    return 1 if counts["failed"] else 0
