"""One video in, one ``video.npy`` (N,S,S,3) of aligned faces + ``face_record.npz`` out.

Frames are processed as they are decoded: detect (every k frames, on a downscaled frame) →
68 landmarks → five points → similarity onto the ArcFace template → bilinear warp straight into
a memory-mapped temporary array, renamed into place when the video is complete.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional

import cv2
import numpy as np

from bah.stages.faces.alignment import arcface_template, compat_similarity, fit_similarity, five_points
from bah.stages.faces.detector import DETECTORS, LandmarkPredictor
from bah.stages.faces.tracking import FILL_POLICIES, RECORD_FILE, FaceRecord, FaceTracker
from bah.stages.faces.writer import FaceArrayWriter, remove_stale_temporaries
from bah.core.files import atomic_path

log = logging.getLogger(__name__)

VIDEO_FILE = "video.npy"


@dataclass
class StepTimer:
    """Seconds spent per pipeline step (decode, detect, landmarks, warp, write)."""

    clock: Callable[[], float] = time.perf_counter
    seconds: Dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str):
        t = self.clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - t


class _TimedDetector:
    def __init__(self, inner, timer):
        self.inner, self.timer = inner, timer

    def detect(self, gray):
        with self.timer("detect"):
            return self.inner.detect(gray)


class _TimedPredictor:
    def __init__(self, inner, timer):
        self.inner, self.timer = inner, timer

    def __call__(self, gray, box):
        with self.timer("landmarks"):
            return self.inner(gray, box)


class FaceAligner:
    """Holds the detector and landmark models (loaded once, reused for every video)."""

    # what the per-step timings measure; benchmarks on a shared machine use time.process_time
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, cfg):
        self.cfg = cfg
        self.detector = DETECTORS.create(cfg.detector, cfg)
        self.predictor = LandmarkPredictor()
        FILL_POLICIES.get(cfg.fill_policy)  # fail early on an unknown name
        self.template = arcface_template(cfg.size)
        self._estimate = compat_similarity if cfg.compat_alignment else fit_similarity

    def affine(self, landmarks68: np.ndarray) -> np.ndarray:
        pts = five_points(landmarks68)
        return self._estimate(pts, self.template)

    def align_video(self, frames: Iterable[np.ndarray], n_frames: int, dest_dir: Path,
                    jpeg_dir: Optional[Path] = None,
                    on_frame: Optional[Callable[[int], None]] = None) -> dict:
        """Align ``n_frames`` frames from ``frames`` into ``dest_dir/video.npy``; return the facts.

        Raises ``NoFaceError`` when no frame has a face, ``OSError`` for write failures; either way
        nothing partial is left in ``dest_dir``.
        """
        if n_frames <= 0:
            raise ValueError(f"zero frames to align (manifest frame count {n_frames})")
        cfg = self.cfg
        timer = StepTimer(self.clock)
        tracker = FaceTracker(_TimedDetector(self.detector, timer), _TimedPredictor(self.predictor, timer),
                              cfg.detect_every, cfg.max_track_shift, cfg.max_track_scale)
        record = FaceRecord(n_frames)
        remove_stale_temporaries(dest_dir, VIDEO_FILE)
        remove_stale_temporaries(dest_dir, RECORD_FILE)
        t0, c0 = time.perf_counter(), time.process_time()
        it = iter(frames)
        try:
            decoded, decode_error = self._align_frames(it, n_frames, dest_dir, jpeg_dir, tracker, record, timer, on_frame)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # stopping at N frames must not leave the container open
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        n_detected = int(record.detected.sum())
        return {
            "n_frames": n_frames,
            "decoded_frames": decoded,
            "decode_error": decode_error,
            "n_detected": n_detected,
            "n_tracked": int(record.tracked.sum()),
            "n_filled": n_frames - n_detected,
            "detector_runs": tracker.detections,
            "first_face": int(np.argmax(record.detected)),
            "seconds": round(elapsed, 3),
            "cpu_seconds": round(cpu, 3),
            "fps": round(decoded / elapsed, 2) if elapsed > 0 else None,
            "step_seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        }

    def _align_frames(self, it, n_frames, dest_dir, jpeg_dir, tracker, record, timer, on_frame):
        cfg, S = self.cfg, self.cfg.size
        decoded = 0
        decode_error = None
        with FaceArrayWriter(dest_dir / VIDEO_FILE, n_frames, S) as faces:
            policy = FILL_POLICIES.create(cfg.fill_policy, faces, record, S)
            last_frame = None
            for i in range(n_frames):
                try:
                    with timer("decode"):
                        frame = next(it)
                except StopIteration:
                    break
                except Exception as exc:
                    if decoded == 0:
                        raise  # unreadable from the start: the decoder's error names the file
                    # a stream truncated after some frames: keep what decoded, conform to N below
                    decode_error = f"{type(exc).__name__}: {exc}"
                    break
                decoded += 1
                last_frame = frame
                with timer("gray"):
                    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                obs = tracker.step(gray)
                if obs is None:
                    with timer("write"):
                        policy.missing(i, frame)
                else:
                    M = self.affine(obs.landmarks)
                    with timer("warp"):
                        face = cv2.warpAffine(frame, M, (S, S), flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    with timer("write"):
                        faces[i] = face
                        record.set_found(i, obs, M)
                        policy.found(i)
                if on_frame is not None:
                    on_frame(1)
            # frames the decoder no longer gives (the manifest's N is the contract) hold the last face
            for i in range(decoded, n_frames):
                policy.missing(i, last_frame if last_frame is not None else np.zeros((S, S, 3), np.uint8))
                if on_frame is not None:
                    on_frame(1)
            policy.finish()
            with timer("write"):
                with atomic_path(dest_dir / RECORD_FILE, suffix=".npz") as tmp:
                    with open(tmp, "wb") as fh:
                        np.savez(fh, **record.arrays())
                        fh.flush()
                        os.fsync(fh.fileno())
                if jpeg_dir is not None:
                    write_jpegs(faces.array, jpeg_dir, cfg.jpeg_quality)
        return decoded, decode_error


def write_jpegs(faces: np.ndarray, folder: Path, quality: int = 75) -> None:
    """``folder/frame-<k>.jpg`` (k from 0) via a temporary sibling folder, renamed when complete."""
    from PIL import Image

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        for k in range(len(faces)):
            # PIL with the original's settings (quality 75, 4:2:0) so the files match the release's
            Image.fromarray(np.asarray(faces[k])).save(tmp / f"frame-{k}.jpg", format="JPEG", quality=quality)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
