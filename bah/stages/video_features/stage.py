"""``bah video-features``: per-window and per-video vectors for every video of the manifest.

Blocks (``--nblocks B --process_block b`` or a SLURM array), one status record per video and
extractor under ``out/stages/video_features/<name>/``, a failure list per block; a rerun skips
what is done with the same settings. One bad video never stops the block, and the command
exits with status 1 when any video failed.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from bah.core.config import ConfigError
from bah.core.files import atomic_path, write_json
from bah.core.progress import progress_bar
from bah.core.layout import stage_dir, transcript_path, video_dir, video_features_dir, video_key
from bah.core.shards import add_block_arguments, take_block
from bah.core.status import StageResult, StageStatus, claim_all
from bah.stages.manifest import record_times
from bah.stages.speech.settings import STAGE as TRANSCRIBE, TranscribeConfig
from bah.stages.video_features.base import (
    STAGE, VERSION, VIDEO_EXTRACTORS, Clip, VideoExtractor, VideoFeatureConfig, window_times,
)

log = logging.getLogger(__name__)


def write_npz(dest: Path, windows: np.ndarray, times: np.ndarray, video: np.ndarray, names: Sequence[str]) -> None:
    """The contract's file, written atomically (no object arrays: readable without pickle)."""
    with atomic_path(dest, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, windows=np.asarray(windows, np.float32), window_times=np.asarray(times, np.float64),
                     video=np.asarray(video, np.float32), names=np.asarray(list(names), dtype=str))
            fh.flush()
            os.fsync(fh.fileno())


def read_npz(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class AsrOnDemand:
    """Recognises a clip's speech when ``bah transcribe`` has not, and keeps the transcript file."""

    def __init__(self, out: Path, settings: TranscribeConfig, block: str):
        self.out = Path(out)
        self.settings = settings
        self.status = StageStatus(out, TRANSCRIBE, settings.result_hash(), block=block)
        self._recogniser = None

    def __call__(self, clip: Clip) -> Dict[str, Any]:
        from bah.stages.speech.asr import transcribe_audio

        if self._recogniser is None:
            self._recogniser = self.settings.recogniser()
        t0 = time.perf_counter()
        data = transcribe_audio(self._recogniser, clip.audio())
        write_json(transcript_path(self.out, clip.video_id), data)
        self.status.mark_done(clip.video_id, words=len(data["chunks"]), seconds=round(time.perf_counter() - t0, 3),
                              note=data.get("note"))
        return data


def clip_of(rec: Any, out: Path, data_root: Optional[Path], asr=None) -> Clip:
    """The extractor view of one manifest row."""
    if getattr(rec, "error", None):
        raise ValueError(f"unreadable video in the manifest: {rec.error}")
    tr = None
    if data_root is not None:
        from bah.data import Release

        tr = Release(data_root).transcription_path(rec.video_id)
    return Clip(video_id=rec.video_id, path=Path(rec.path), duration=rec.audio_duration or rec.duration,
                fps=float(rec.avg_fps or rec.real_fps or 25.0), n_frames=int(rec.n_frames or 0),
                face_dir=video_dir(out, rec.video_id), transcript=rec.transcript or "", transcription_path=tr,
                asr_path=transcript_path(out, rec.video_id), asr=asr,
                times=record_times(rec, out) if rec.n_frames else None)


def extract_video_features(records: Sequence[Any], out: Path, settings: VideoFeatureConfig,
                           transcribe: Optional[TranscribeConfig] = None, data_root: Optional[Path] = None,
                           block: Tuple[int, int] = (1, 0), force: bool = False,
                           extractors: Optional[Dict[str, VideoExtractor]] = None,
                           progress: bool = True) -> StageResult:
    """Run the configured extractors on the manifest rows of one block.

    ``extractors`` may hand in ready objects (tests, notebooks); the others are built when some
    video needs them. An extractor whose optional package is missing fails the run early.
    """
    out = Path(out)
    nblocks, b = block
    todo = list(take_block(list(records), nblocks, b))
    names = list(settings.extractors)
    for n in names:
        reason = VIDEO_EXTRACTORS.get(n).available()
        if reason and not (extractors and n in extractors):
            raise ConfigError(f"video extractor {n!r} is not usable here: {reason}")
    status = {n: StageStatus(out, f"{STAGE}/{n}", settings.result_hash(n), block=str(b)) for n in names}
    for st in status.values():
        st.begin(nblocks, [r.video_id for r in todo])

    def dest(n: str, vid: str) -> Path:
        return video_features_dir(out, n) / f"{video_key(vid)}.npz"

    def pending(rec: Any, n: str) -> bool:
        return force or not (status[n].is_done(rec.video_id) and dest(n, rec.video_id).is_file())

    work = [(rec, [n for n in names if pending(rec, n)]) for rec in todo]
    built: Dict[str, VideoExtractor] = dict(extractors or {})
    for n in names:
        if n not in built and any(n in ns for _, ns in work):
            try:
                built[n] = VIDEO_EXTRACTORS.create(n, settings)
            except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
                raise ConfigError(f"video extractor {n!r}: {exc}") from None
    for n in names:
        if n in built:
            write_json(video_features_dir(out, n) / "meta.json", {
                "window_s": settings.window_s, "hop_s": settings.hop_s, "dim": len(built[n].names()),
                "names": built[n].names(), "extractor": built[n].meta(), "version": VERSION})
    asr = AsrOnDemand(out, transcribe or TranscribeConfig(), str(b)) if settings.asr_when_missing else None

    res = StageResult()
    bar = progress_bar(work, desc=f"video-features [{','.join(names)}] block {b}/{nblocks}", unit="video",
               disable=not (progress and work))
    for rec, ns in bar:
        if not ns:
            res.skipped += 1
            continue
        vid = rec.video_id
        locks = claim_all([status[n] for n in ns], vid)
        if locks is None:  # a twin copy of this block works on this video now
            continue
        try:
            ok = _extract_one(rec, [n for n in ns if pending(rec, n)], out, data_root, asr, built, status, settings,
                              dest)
        finally:
            for lock in locks:
                lock.release()
        if ok is None:
            res.skipped += 1
        else:
            res.done += ok
            res.failed += not ok
    res.failures = [f for st in status.values() for f in st.failures() if f.get("block") == str(b)]
    for st in status.values():
        st.finish(done=res.done, skipped=res.skipped, failed=res.failed)
    write_json(stage_dir(out, STAGE) / f"meta-block{b}.json",
               {"version": VERSION, "settings": asdict(settings), "extractors": {n: built[n].meta() for n in built}})
    return res


def _extract_one(rec: Any, ns: Sequence[str], out: Path, data_root: Optional[Path], asr: Any,
                 built: Dict[str, VideoExtractor], status: Dict[str, StageStatus], settings: VideoFeatureConfig,
                 dest: Any) -> Optional[bool]:
    """Every pending extractor on one video: True all done, False some failed (recorded), None nothing to do."""
    if not ns:
        return None  # a twin copy finished it meanwhile
    vid = rec.video_id
    try:
        clip = clip_of(rec, out, data_root, asr)
    except (ValueError, TypeError, OSError) as exc:
        for n in ns:
            status[n].mark_failed(vid, str(exc))
        return False
    times = window_times(clip.duration, settings.window_s, settings.hop_s)
    ok = True
    for n in ns:
        ex = built[n]
        t0, before = time.perf_counter(), len(clip.warnings)
        try:
            win, vec = ex.check(clip, times, ex.extract(clip, times))
            write_npz(dest(n, vid), win, times, vec, ex.names())
        except Exception as exc:  # one bad video never stops the block
            log.warning("%s: %s failed: %s", vid, n, exc)
            status[n].mark_failed(vid, f"{type(exc).__name__}: {exc}")
            ok = False
            continue
        status[n].mark_done(vid, windows=int(times.shape[0]), dim=int(win.shape[1]),
                            seconds=round(time.perf_counter() - t0, 3), warnings=clip.warnings[before:])
    return ok


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("video features")
    g.add_argument("--extractors", type=VIDEO_EXTRACTORS.names_type("extractor"), default=None, metavar="A,B",
                   help=f"comma-separated; known: {', '.join(VIDEO_EXTRACTORS.list())} "
                        f"(default {','.join(VideoFeatureConfig.__dataclass_fields__['extractors'].default)})")
    g.add_argument("--window", dest="window_s", type=float, default=None, metavar="SECONDS", help="window length (5)")
    g.add_argument("--hop", dest="hop_s", type=float, default=None, metavar="SECONDS", help="window hop (2.5)")
    g.add_argument("--text-source", choices=("auto", "release", "asr"), default=None,
                   help="words for the text extractors (auto: the release's transcription when present, else ASR)")
    g.add_argument("--text-model", default=None, help="text-embed: 'minilm' (packaged) or a model folder")
    g.add_argument("--encoder-path", default=None, metavar="DIR", help="hf-encoder: a Hugging Face model folder")
    g.add_argument("--asr-model", default=None, help="model for transcripts made on demand (default tiny.en)")
    g.add_argument("--split", choices=("train", "val", "test"), default=None, help="only this split (default: all)")
    g.add_argument("--force", action="store_true", help="recompute even videos whose outputs are up to date")
    add_block_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args
    from bah.stages.manifest import block_records

    ov = {f"{STAGE}.{k}": getattr(args, k, None) for k in ("extractors", "window_s", "hop_s", "text_source",
                                                            "text_model", "encoder_path")}
    ov[f"{TRANSCRIBE}.asr_model"] = args.asr_model
    cfg = config_from_args(args, sections=[STAGE, TRANSCRIBE], overrides=ov)
    settings: VideoFeatureConfig = cfg[STAGE]
    records, block = block_records(cfg, STAGE, args.split, args.nblocks, args.process_block)
    res = extract_video_features(records, cfg.out, settings, cfg[TRANSCRIBE], data_root=cfg.data_root, block=block,
                                 force=args.force)
    print(f"video-features: {res.done} videos done, {res.skipped} already up to date, {res.failed} failed "
          f"(block {block[1]} of {block[0]}; extractors {', '.join(settings.extractors)})")
    if res.failed:
        print(f"failures are listed in {stage_dir(cfg.out, STAGE)}/<extractor>/failures-block{block[1]}.jsonl",
              file=sys.stderr)
        for f in res.failures[:10]:
            print(f"  {f['video_id']}: {f['reason']}", file=sys.stderr)
    return 1 if res.failed else 0
