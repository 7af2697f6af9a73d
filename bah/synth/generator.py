"""``generate_dataset``: plan -> per-video speech, faces and mp4 (in parallel) -> release files.

Each video is rendered by :func:`render_video`, which writes the mp4 and a sidecar JSON under
``<root>/.synth/`` holding what the generator knows for certain (the Whisper chunks and the
frames where the visual cue was actually drawn). A rerun skips a video whose mp4 and sidecar
exist and match the plan, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from bah.core.progress import progress_bar as tqdm  # obeys --no-progress, TQDM_DISABLE, log files

from bah.core.files import config_hash, write_json, write_jsonl, write_yaml
from bah.synth import release
from bah.synth.plan import VideoPlan, make_plan
from bah.synth.settings import SynthConfig

log = logging.getLogger(__name__)

# Bump when the rendering changes so that resumed runs re-render old videos.
RENDER_VERSION = 2  # 2: frames at planned times (VFR), rotation, silences
SIDECAR_DIR = ".synth"


class SynthError(RuntimeError):
    """Some videos could not be generated; the message lists them."""


def sidecar_path(root: Path, video_id: str) -> Path:
    return Path(root) / SIDECAR_DIR / (video_id + ".json")


def load_truth(root: os.PathLike, video_id: str) -> dict:
    """The generator's record of one video: chunks, cue frames, transcript (for tests and checks)."""
    path = sidecar_path(Path(root), video_id)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _video_key(v: VideoPlan, cfg: SynthConfig) -> str:
    return config_hash({
        "video": dataclasses.asdict(v),
        "render": [cfg.width, cfg.height, cfg.audio_rate, cfg.crf, RENDER_VERSION],
    })


def _runs(mask: np.ndarray) -> List[List[int]]:
    """Inclusive [start, end] runs of True in a boolean array."""
    out, i, n = [], 0, len(mask)
    while i < n:
        if mask[i]:
            j = i
            while j + 1 < n and mask[j + 1]:
                j += 1
            out.append([i, j])
            i = j + 1
        else:
            i += 1
    return out


def render_video(v: VideoPlan, cfg: SynthConfig, root: Path) -> dict:
    """Write one mp4 (+ sidecar) unless an identical one is already there; return its record."""
    from bah.core.media import write_video
    from bah.synth.face import FaceAnimator
    from bah.synth.speech import WHISPER_WINDOW, build_speech, whisper_chunks

    root = Path(root)
    mp4 = root / v.video_id
    side = sidecar_path(root, v.video_id)
    key = _video_key(v, cfg)
    if mp4.is_file() and side.is_file():
        try:
            rec = json.loads(side.read_text(encoding="utf-8"))
            if rec.get("key") == key and rec.get("mp4_size") == mp4.stat().st_size:
                rec["skipped"] = True
                return rec
        except (OSError, ValueError):
            pass  # unreadable sidecar: render again

    # A silent ending: speech (and A/H) only in the part before it, then zeros.
    speech_plan = dataclasses.replace(v, n_frames=v.n_frames - int(round(v.silence * v.fps))) if v.silence else v
    speech = build_speech(speech_plan, cfg.audio_rate)
    audio = speech.audio
    n_audio = int(round(v.duration * cfg.audio_rate))
    if audio.size < n_audio:
        audio = np.pad(audio, (0, n_audio - audio.size))
    env = speech.envelope(speech_plan.n_frames, v.fps)
    env = np.pad(env, (0, v.n_frames - env.size))
    grid, times = v.frame_times()
    labels = v.frame_labels(times)
    spans = v.seconds_intervals()
    # A phone held upright: render the upright picture, store it turned, let the display matrix undo it.
    width, height = (cfg.height, cfg.width) if v.rotation in (90, 270) else (cfg.width, cfg.height)
    animator = FaceAnimator(v, width, height)

    def frames():
        for k in range(times.size):
            cue_t = None
            if labels[k]:
                start = max(a for a, b in spans if a <= times[k] + 1e-9)
                cue_t = float(times[k] - start)
            # pose follows time (frame index on the nominal grid, fractional for jittered frames)
            img = animator.frame(float(times[k] * v.fps), float(env[grid[k]]), cue_t)
            yield np.ascontiguousarray(np.rot90(img, k=-(v.rotation // 90))) if v.rotation else img

    write_video(mp4, frames(), v.fps, times=times if v.vfr else None, audio=audio, audio_rate=cfg.audio_rate,
                duration=v.duration, n_frames=times.size, codec="libx264", crf=cfg.crf, rotation=v.rotation)
    chunks = whisper_chunks(speech, v.last_end_none)
    if v.overrun and chunks:
        _overrun(chunks, speech.chunks[-1].start, v.duration, WHISPER_WINDOW)
    rec = {
        "key": key,
        "video_id": v.video_id,
        "label": v.label,
        "n_frames": int(times.size),
        "fps": v.fps,
        "vfr": v.vfr,
        "rotation": v.rotation,
        "silence": v.silence,
        "frame_times": [round(float(t), 6) for t in times],
        "intervals": [list(iv) for iv in v.intervals],
        "interval_seconds": [list(iv) for iv in spans],
        "cue_frames": _runs(labels.astype(bool)),
        "transcript": speech.transcript,
        "chunks": [dataclasses.asdict(c) for c in speech.chunks],
        "whisper_chunks": [dict(c, timestamp=list(c["timestamp"])) for c in chunks],
        "mp4_size": mp4.stat().st_size,
    }
    write_json(side, rec)
    rec["skipped"] = False
    return rec


# How far an overrunning transcript reaches outside the video (seconds).
OVERRUN_BEFORE, OVERRUN_AFTER = 0.25, 1.7


def _overrun(chunks: List[dict], last_start: float, duration: float, window_s: float) -> None:
    """Whisper past the ends: the first chunk starts before 0, the last ends after the video."""
    chunks[0]["timestamp"] = (-OVERRUN_BEFORE, chunks[0]["timestamp"][1])
    window = int(last_start // window_s) * window_s  # the last chunk's times restart there
    chunks[-1]["timestamp"] = (chunks[-1]["timestamp"][0], round(duration - window + OVERRUN_AFTER, 2))


def _work(job) -> Tuple[str, Optional[dict], Optional[str]]:
    v, cfg, root = job
    try:
        return v.video_id, render_video(v, cfg, root), None
    except Exception as exc:  # one bad video never stops the batch
        log.debug("synth failure %s", traceback.format_exc())
        return v.video_id, None, f"{type(exc).__name__}: {exc}"


def _pool_init():
    # One thread per worker process: the parallelism is across videos.
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def generate_dataset(
    root: os.PathLike,
    subjects: int = 12,
    videos_per_subject: int = 3,
    fps: float = 25,
    seconds: float = 8.0,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    workers: int = 1,
    progress: bool = True,
    **extra,
) -> Path:
    """Write a synthetic dataset in the BAH release layout under ``root``; return ``root``.

    ``extra`` takes the other :class:`SynthConfig` fields (``positive_fraction``, ``audio_rate``,
    ``crf``). Raises :class:`SynthError` (after writing everything else) if some videos failed.
    """
    cfg = SynthConfig(subjects=subjects, videos_per_subject=videos_per_subject, fps=float(fps), seconds=float(seconds),
                      seed=seed, width=width, height=height, workers=workers, **extra)
    return generate_from_config(Path(root), cfg, progress=progress)


def generate_from_config(root: Path, cfg: SynthConfig, progress: bool = True) -> Path:
    from bah.synth.speech import espeak_binary

    espeak_binary()  # fail early with the install hint, not once per video
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    plan = make_plan(cfg)
    jobs = [(v, cfg, root) for v in plan.videos]
    records: Dict[str, dict] = {}
    failures: List[dict] = []
    bar = tqdm(total=len(jobs), desc="synth videos", unit="video", disable=not progress)
    workers = cfg.workers or min(8, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: the caller may hold threads (torch, OpenMP) that fork would copy badly.
        ctx = mp.get_context("spawn")
        with ctx.Pool(min(workers, len(jobs)), initializer=_pool_init) as pool:
            for vid, rec, err in pool.imap_unordered(_work, jobs):
                _collect(vid, rec, err, records, failures)
                bar.update(1)
    else:
        for job in jobs:
            _collect(*_work(job), records, failures)
            bar.update(1)
    bar.close()
    release.write_release(root, plan, records)
    write_yaml(root / SIDECAR_DIR / "config.yaml", {"synth": dataclasses.asdict(cfg), "render_version": RENDER_VERSION})
    write_jsonl(root / SIDECAR_DIR / "failures.jsonl", failures)
    skipped = sum(1 for r in records.values() if r.get("skipped"))
    log.info("synth: %d videos in %s (%d rendered, %d already there, %d failed)", len(records), root,
             len(records) - skipped, skipped, len(failures))
    if failures:
        listing = "; ".join(f"{f['video_id']}: {f['reason']}" for f in failures[:5])
        raise SynthError(f"{len(failures)} of {len(jobs)} videos failed (see {root / SIDECAR_DIR / 'failures.jsonl'}): {listing}")
    return root


def _collect(vid, rec, err, records, failures):
    if err is None:
        records[vid] = rec
    else:
        failures.append({"video_id": vid, "reason": err})
        log.error("synth: %s failed: %s", vid, err)
