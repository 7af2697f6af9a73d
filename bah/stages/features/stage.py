"""``bah features``: per-frame audio / text / visual features for every video of the manifest.

Work is cut into contiguous blocks like the original (``--nblocks B --process_block b``,
or a SLURM array; ``--nparts/--part`` are aliases). Every extractor keeps its own status records under ``out/stages/features/<name>/``,
so adding an extractor later does not redo the others, and a rerun skips what is done
(unless ``--force``). A video that fails lands in that extractor's failure list and the
loop goes on.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from bah.core.progress import progress_bar

from bah.core.config import ConfigError
from bah.stages.features import EXTRACTORS
from bah.stages.features.base import Extractor, VideoInput
from bah.stages.features.text import ALIGNMENTS, CLIPPED_NOTE
from bah.stages.features.settings import STAGE, VERSION, FeatureConfig  # noqa: F401
from bah.core.files import save_npy, write_json
from bah.core.layout import stage_dir, video_dir
from bah.core.shards import add_block_arguments, take_block
from bah.core.status import StageResult, StageStatus, claim_all
from bah.stages.manifest import record_times

log = logging.getLogger(__name__)

REPAIR_TEXT = {"vfr": "variable-frame-rate (rows at their recorded frame times)",
               "clipped_timestamps": "with transcript timestamps outside the video (clipped)"}

def video_input(rec: Any, out: Path, data_root: Optional[Path], compat: bool = False) -> VideoInput:
    """The extractor view of one manifest row; frames sit at their recorded times (i/fps in compat)."""
    fps = rec.avg_fps or rec.real_fps
    tr_path = None
    if data_root is not None:
        from bah.data import Release

        tr_path = Release(data_root).transcription_path(rec.video_id)
    video = VideoInput(
        video_id=rec.video_id, path=Path(rec.path), n_frames=rec.n_frames, fps=fps,
        out_dir=video_dir(out, rec.video_id), transcript=rec.transcript or "",
        transcription_path=tr_path, duration=rec.audio_duration or rec.duration,
        times=record_times(rec, out, compat=compat),
    )
    if getattr(rec, "vfr", False):
        video.warnings.append(
            f"variable frame rate (average {fps:.3f} fps): rows at "
            + ("i/fps (compat), not the recorded frame times" if compat else "the recorded frame times"))
    return video


def extract_features(records: Sequence[Any], out: Path, settings: FeatureConfig, data_root: Optional[Path] = None,
                     block: Tuple[int, int] = (1, 0), force: bool = False,
                     extractors: Optional[Dict[str, Extractor]] = None) -> StageResult:
    """Run the configured extractors on ``records`` (manifest rows) of one block.

    ``extractors`` may hand in ready objects (tests, notebooks); missing ones are built
    from ``settings`` only when some video still needs them.
    """
    out = Path(out)
    nblocks, b = block
    todo = list(take_block(list(records), nblocks, b))
    names = []
    for name in settings.extractors:
        reason = EXTRACTORS.get(name).available()
        if reason and not (extractors and name in extractors):
            if not settings.skip_unavailable:
                raise ConfigError(f"extractor {name!r} is not usable here: {reason}")
            log.warning("skipping extractor %s: %s", name, reason)
            continue
        names.append(name)
    missing_inputs(todo, out, names)
    status = {n: StageStatus(out, f"{STAGE}/{n}", settings.result_hash(n), block=str(b)) for n in names}
    for st in status.values():
        st.begin(nblocks, [r.video_id for r in todo])
    stems = {n: EXTRACTORS.get(n).stem for n in names}

    def pending(rec, n) -> bool:
        if force or not status[n].is_done(rec.video_id):
            return True
        return not (video_dir(out, rec.video_id) / f"{stems[n]}.npy").is_file()

    work = [(rec, [n for n in names if pending(rec, n)]) for rec in todo]
    built: Dict[str, Extractor] = dict(extractors or {})
    for n in names:
        if n not in built and any(n in ns for _, ns in work):
            try:
                built[n] = EXTRACTORS.create(n, settings)
            except (ValueError, FileNotFoundError, RuntimeError) as exc:
                raise ConfigError(f"extractor {n!r}: {exc}") from None

    res = StageResult()
    bar = progress_bar(work, desc=f"features [{','.join(names)}] block {b}/{nblocks}", unit="video", disable=not work)
    for rec, ns in bar:
        if not ns:
            res.skipped += 1
            continue
        vid = rec.video_id
        locks = claim_all([status[n] for n in ns], vid)
        if locks is None:  # a twin copy of this block works on this video now
            res.busy += 1
            continue
        try:
            ns = [n for n in ns if pending(rec, n)]  # the twin may have finished some meanwhile
            if not ns:
                res.skipped += 1
                continue
            ok = _extract_one(rec, ns, out, data_root, built, status, compat=settings.compat, repairs=res.repairs)
        finally:
            for lock in locks:
                lock.release()
        res.done += ok is True
        res.failed += ok is False
    res.failures = [f for st in status.values() for f in st.failures() if f.get("block") == str(b)]
    for st in status.values():
        st.finish(done=res.done, skipped=res.skipped, failed=res.failed, busy=res.busy)
    meta = {"version": VERSION, "settings": asdict(settings), "repairs": res.repairs,
            "extractors": {n: built[n].meta() for n in names if n in built}}
    write_json(stage_dir(out, STAGE) / f"meta-block{b}.json", meta)
    return res


def _extract_one(rec: Any, ns: Sequence[str], out: Path, data_root: Optional[Path], built: Dict[str, Extractor],
                 status: Dict[str, StageStatus], compat: bool = False,
                 repairs: Optional[Dict[str, int]] = None) -> bool:
    """Every pending extractor on one video; True when all succeeded. Failures are recorded;
    ``repairs`` counts the notes the summary reports (a VFR video, clipped transcript times)."""
    vid = rec.video_id
    try:
        if getattr(rec, "error", None):
            raise ValueError(f"unreadable video in the manifest: {rec.error}")
        video = video_input(rec, out, data_root, compat=compat)
    except (ValueError, TypeError, OSError) as exc:
        for n in ns:
            status[n].mark_failed(vid, str(exc))
        return False
    ok = True
    for n in ns:
        ex = built[n]
        t0, before = time.perf_counter(), len(video.warnings)
        try:
            arr = ex.check(video, ex.extract(video))
            save_npy(video.out_dir / f"{ex.stem}.npy", arr)
        except Exception as exc:  # one bad video never stops the block
            log.warning("%s: %s failed: %s", vid, n, exc)
            status[n].mark_failed(vid, f"{type(exc).__name__}: {exc}")
            ok = False
            continue
        status[n].mark_done(vid, shape=list(arr.shape), seconds=round(time.perf_counter() - t0, 3),
                            warnings=video.warnings[before:])
    if repairs is not None:
        for kind, hit in (("vfr", bool(getattr(rec, "vfr", False))),
                          ("clipped_timestamps", any(w.startswith(CLIPPED_NOTE) for w in video.warnings))):
            if hit:
                repairs[kind] = repairs.get(kind, 0) + 1
    return ok


def missing_inputs(records: Sequence[Any], out: Path, names: Sequence[str]) -> None:
    """Stop up front, once, when vision extractors run before `bah faces` did for any video of the block."""
    from bah.stages.faces.tracking import RECORD_FILE
    from bah.stages.features.visual import FACES_FILE

    vision = [n for n in names if EXTRACTORS.get(n).modality == "vision"]
    if not vision or not records:
        return
    if not any((video_dir(out, r.video_id) / f).is_file() for r in records for f in (FACES_FILE, RECORD_FILE)):
        raise ConfigError(f"extractor(s) {', '.join(vision)} read the faces of each video, and none of the "
                          f"{len(records)} videos of this block has {FACES_FILE} or {RECORD_FILE} under "
                          f"{out}/features/: run `bah faces --out {out}` first")


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("features")
    g.add_argument("--extractors", type=EXTRACTORS.names_type("extractor"), default=None, metavar="A,B",
                   help=f"comma-separated extractors; known: {', '.join(EXTRACTORS.list())} (default logmel,bert,landmarks)")
    g.add_argument("--split", choices=("train", "val", "test"), default=None, help="only this split (default: all)")
    g.add_argument("--force", action="store_true", help="recompute even videos whose outputs are up to date")
    g.add_argument("--strict", action="store_true",
                   help="(kept for old scripts: the exit status is 1 whenever a video failed)")
    add_block_arguments(parser)
    m = parser.add_argument_group("models")
    m.add_argument("--text-model", default=None, help="BERT-family model: hub name, local folder or 'minilm'")
    m.add_argument("--text-alignment", choices=ALIGNMENTS.list(), default=None)
    m.add_argument("--text-fill", choices=("zeros", "nearest"), default=None)
    m.add_argument("--vggish-weights", default=None, metavar="FILE", help="torchvggish vggish-10086976.pth")
    m.add_argument("--ir50-weights", default=None, metavar="FILE", help="res50_ir_0.887.pth")
    m.add_argument("--resnet-path", default=None, metavar="DIR", help="folder with mini_config.yml + model.pt")
    m.add_argument("--compat", action="store_true", default=None, help="vggish: the original's row shift")
    m.add_argument("--batch-size", type=int, default=None)
    m.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args
    from bah.stages.manifest import block_records

    cfg = config_from_args(args, sections=[STAGE], overrides={
        f"{STAGE}.{k}": getattr(args, k, None) for k in (
            "extractors", "text_model", "text_alignment", "text_fill", "vggish_weights", "ir50_weights",
            "resnet_path", "compat", "batch_size", "device")
    })
    settings: FeatureConfig = cfg[STAGE]
    records, block = block_records(cfg, STAGE, args.split, args.nblocks, args.process_block)
    res = extract_features(records, cfg.out, settings, data_root=cfg.data_root, block=block, force=args.force)
    busy = f", {res.busy} left to a twin copy of this block" if res.busy else ""
    print(f"features: {res.done} videos done, {res.skipped} already up to date, {res.failed} failed{busy} "
          f"(block {block[1]} of {block[0]}; extractors {', '.join(settings.extractors)})")
    if res.repairs:
        print("features: " + ", ".join(f"{n} video(s) {REPAIR_TEXT.get(k, k)}" for k, n in sorted(res.repairs.items())))
    if res.failures:
        print(f"failures are listed in {stage_dir(cfg.out, STAGE)}/<extractor>/failures-block{block[1]}.jsonl",
              file=sys.stderr)
        for f in res.failures[:10]:
            print(f"  {f['video_id']}: {f['reason']}", file=sys.stderr)
    return 1 if res.failed else 0
