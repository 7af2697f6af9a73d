"""Following one face through a video, and what to store on frames where no face is found.

``FaceTracker`` runs the (costly) detector only every ``detect_every`` frames or when the track
is lost, and the 68-point predictor on every frame; between detections the next frame's box is
predicted from the current landmarks. ``FILL_POLICIES`` decide what a frame without a face shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from bah.stages.faces.detector import Detection
from bah.core.registry import Registry


class NoFaceError(RuntimeError):
    """No face was found on any frame of a video."""


@dataclass
class Observation:
    box: np.ndarray        # (4,) the box the landmarks were predicted in
    landmarks: np.ndarray  # (68, 2)
    score: float           # detector score of the detection this track comes from
    tracked: bool          # True: box predicted from the previous frame; False: fresh detection


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def choose_face(dets: List[Detection], previous: Optional[np.ndarray]) -> Detection:
    """The detection that continues the previous track, else the largest."""
    if previous is not None:
        best = max(dets, key=lambda d: iou(d.box, previous))
        if iou(best.box, previous) > 0.0:
            return best
    return max(dets, key=lambda d: d.area)


def _landmark_box(lm: np.ndarray) -> np.ndarray:
    return np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()], dtype=np.float64)


class FaceTracker:
    def __init__(self, detector, predictor, detect_every: int = 5,
                 max_shift: float = 0.35, max_scale: float = 0.3):
        self.detector = detector
        self.predictor = predictor
        self.detect_every = int(detect_every)
        self.max_shift = float(max_shift)
        self.max_scale = float(max_scale)
        self.box: Optional[np.ndarray] = None  # predicted box for the next frame
        self.score = 0.0
        self.since_detect = 0
        self._rel = np.array([0.0, 0.0, 0.0, 0.0])  # detector box relative to the landmark box
        self.detections = 0  # how many times the detector ran (for benchmarks)

    def step(self, gray: np.ndarray) -> Optional[Observation]:
        if self.box is not None and self.since_detect < self.detect_every:
            obs = self._follow(gray)
            if obs is not None:
                self.since_detect += 1
                return obs
        return self._detect(gray)

    def _detect(self, gray: np.ndarray) -> Optional[Observation]:
        self.detections += 1
        self.since_detect = 1
        dets = self.detector.detect(gray)
        if not dets:
            self.box = None
            return None
        det = choose_face(dets, self.box)
        lm = self.predictor(gray, det.box)
        lb = _landmark_box(lm)
        w, h = max(lb[2] - lb[0], 1.0), max(lb[3] - lb[1], 1.0)
        self._rel = np.array([(det.box[0] - lb[0]) / w, (det.box[1] - lb[1]) / h,
                              (det.box[2] - lb[2]) / w, (det.box[3] - lb[3]) / h])
        self.score = det.score
        self.box = self._box_from(lm)
        return Observation(det.box.copy(), lm, det.score, False)

    def _follow(self, gray: np.ndarray) -> Optional[Observation]:
        box = self.box
        lm = self.predictor(gray, box)
        nxt = self._box_from(lm)
        w_old = box[2] - box[0]
        w_new = nxt[2] - nxt[0]
        shift = np.hypot((nxt[0] + nxt[2] - box[0] - box[2]) / 2, (nxt[1] + nxt[3] - box[1] - box[3]) / 2)
        h, w = gray.shape[:2]
        inside = nxt[0] > -0.25 * w_new and nxt[1] > -0.25 * w_new and nxt[2] < w + 0.25 * w_new and nxt[3] < h + 0.25 * w_new
        if w_old <= 1 or shift > self.max_shift * w_old or abs(w_new / w_old - 1) > self.max_scale or not inside:
            return None  # lost: the caller re-detects on this frame
        self.box = nxt
        return Observation(box.copy(), lm, self.score, True)

    def _box_from(self, lm: np.ndarray) -> np.ndarray:
        lb = _landmark_box(lm)
        w, h = max(lb[2] - lb[0], 1.0), max(lb[3] - lb[1], 1.0)
        r = self._rel
        return np.array([lb[0] + r[0] * w, lb[1] + r[1] * h, lb[2] + r[2] * w, lb[3] + r[3] * h])


class FaceRecord:
    """Per-frame facts written to ``face_record.npz`` so later stages can mask filled frames.

    ``source[i]`` is the frame whose face frame i shows (i itself when found on frame i, -1 for
    the compat full-frame fallback); ``detected`` is True only where a face was found on frame i.
    """

    def __init__(self, n: int):
        self.n = n
        self.detected = np.zeros(n, bool)
        self.tracked = np.zeros(n, bool)
        self.source = np.full(n, -2, np.int32)  # -2: not written yet
        self.box = np.zeros((n, 4), np.float32)
        self.landmarks68 = np.zeros((n, 68, 2), np.float32)
        self.score = np.zeros(n, np.float32)
        self.affine = np.zeros((n, 2, 3), np.float64)

    def set_found(self, i: int, obs: Observation, affine: np.ndarray) -> None:
        self.detected[i] = True
        self.tracked[i] = obs.tracked
        self.source[i] = i
        self.box[i] = obs.box
        self.landmarks68[i] = obs.landmarks
        self.score[i] = obs.score
        self.affine[i] = affine

    def set_filled(self, i: int, src: int) -> None:
        self.detected[i] = False
        self.tracked[i] = False
        self.source[i] = src
        if src >= 0:
            for arr in (self.box, self.landmarks68, self.score, self.affine):
                arr[i] = arr[src]

    def set_full_frame(self, i: int, width: int, height: int, size: int) -> None:
        self.set_filled(i, -1)
        self.box[i] = (0, 0, width, height)
        self.affine[i] = ((size / width, 0, 0), (0, size / height, 0))

    def arrays(self) -> dict:
        return {"detected": self.detected, "tracked": self.tracked, "source": self.source, "box": self.box,
                "landmarks68": self.landmarks68, "score": self.score, "affine": self.affine}


RECORD_FILE = "face_record.npz"  # the face stage's per-frame record, beside video.npy


def read_face_record(folder, video_id: str, n_frames: Optional[int] = None) -> dict:
    """A video's face record (``detected``, ``source``, ``landmarks68`` (N, 68, 2), ...), checked;
    errors name the video or the file and say what to run."""
    from pathlib import Path

    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{video_id}: no face record at {path}; run `bah faces` first")
    with np.load(path, allow_pickle=False) as rec:
        arrays = {k: rec[k] for k in rec.files}
    lm = arrays.get("landmarks68")
    if lm is None:
        raise ValueError(f"{path}: no 'landmarks68' array (has {sorted(arrays)})")
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"{path}: landmarks68 has shape {lm.shape}, expected (N, 68, 2)")
    if n_frames and lm.shape[0] != n_frames:
        raise ValueError(f"{path}: {lm.shape[0]} rows but the manifest says N={n_frames}")
    return arrays


class FillPolicy:
    """Streams frames: ``found(i)`` after a face was written to row i, ``missing(i, frame)``
    for a frame without one, ``finish()`` at the end. Writes rows through ``faces[i] = ...``."""

    def __init__(self, faces, record: FaceRecord, size: int):
        self.faces = faces
        self.record = record
        self.size = size
        self.last: Optional[int] = None

    def found(self, i: int) -> None:
        self.last = i

    def missing(self, i: int, frame: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self) -> None:
        if self.last is None:
            raise NoFaceError(f"no face found in any of {self.record.n} frames")


FILL_POLICIES: Registry = Registry("fill policy", FillPolicy)


@FILL_POLICIES.register("backfill")
class BackfillPolicy(FillPolicy):
    """Leading misses show the first detected face; later misses hold the last one."""

    def __init__(self, faces, record, size):
        super().__init__(faces, record, size)
        self.pending: List[int] = []

    def found(self, i: int) -> None:
        if self.last is None and self.pending:
            for p in self.pending:
                self.faces[p] = self.faces[i]
                self.record.set_filled(p, i)
            self.pending = []
        super().found(i)

    def missing(self, i: int, frame: np.ndarray) -> None:
        if self.last is None:
            self.pending.append(i)
        else:
            self.faces[i] = self.faces[self.last]
            self.record.set_filled(i, self.last)


@FILL_POLICIES.register("compat")
class CompatPolicy(FillPolicy):
    """The original: leading misses show the whole first frame (resized, so squashed), then hold-last."""

    def __init__(self, faces, record, size):
        super().__init__(faces, record, size)
        self.full: Optional[np.ndarray] = None

    def missing(self, i: int, frame: np.ndarray) -> None:
        if self.last is not None:
            self.faces[i] = self.faces[self.last]
            self.record.set_filled(i, self.last)
            return
        if self.full is None:
            from PIL import Image

            # PIL's default bicubic resize, as the original's compaction step applied to it
            self.full = np.asarray(Image.fromarray(frame).resize((self.size, self.size)))
            self.full_hw = frame.shape[:2]
        self.faces[i] = self.full
        self.record.set_full_frame(i, self.full_hw[1], self.full_hw[0], self.size)
