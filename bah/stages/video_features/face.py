"""``face-dynamics``: how the face moves, from the face stage's 68 landmarks per frame.

Read from ``face_record.npz`` (``landmarks68`` (N, 68, 2) in frame pixels, ``detected`` (N,));
frames without a detected face are left out. Distances are divided by the inter-ocular
distance of the frame, so the numbers do not depend on the face size; speeds are per second.
Per window (frames whose recorded time falls in it) and over the whole video:

- ``face_ratio``: share of frames with a detected face;
- ``motion_mean``, ``motion_std``, ``motion_max``: speed of the face centre (inter-ocular units / s);
- ``roll_std``: spread of the eye-line angle (degrees); ``yaw_std``: spread of the nose's
  horizontal offset from the eyes' midpoint (inter-ocular units);
- ``ear_mean``, ``ear_std``, ``blink_rate``: eye aspect ratio and blinks per second (a blink:
  a run of frames below 0.75 x the video's median EAR);
- ``mouth_mean``, ``mouth_std``, ``mouth_max``: inner-lip opening / mouth width.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from bah.stages.faces.tracking import read_face_record
from bah.stages.video_features.base import VIDEO_EXTRACTORS, Clip, VideoExtractor

NAMES = ("face_ratio", "motion_mean", "motion_std", "motion_max", "roll_std", "yaw_std", "ear_mean", "ear_std",
         "blink_rate", "mouth_mean", "mouth_std", "mouth_max")
BLINK_FRACTION = 0.75


def _ear(eye: np.ndarray) -> np.ndarray:
    """Eye aspect ratio of (N, 6, 2) eye points (Soukupova & Cech 2016)."""
    v = np.linalg.norm(eye[:, 1] - eye[:, 5], axis=1) + np.linalg.norm(eye[:, 2] - eye[:, 4], axis=1)
    h = np.linalg.norm(eye[:, 0] - eye[:, 3], axis=1)
    return v / np.maximum(2 * h, 1e-9)


def frame_measures(lm: np.ndarray, fps: float, times: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Per-frame measures of (N, 68, 2) landmarks (rows of missing faces give NaN later masked).

    Speeds divide by the time between frames: ``times`` (N,) seconds (variable frame rate), else 1/fps.
    """
    lm = np.asarray(lm, dtype=np.float64)
    le, re = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    iod = np.maximum(np.linalg.norm(re - le, axis=1), 1e-9)
    centre = lm.mean(1) / iod[:, None]
    speed = np.zeros(len(lm))
    step = np.full(len(lm) - 1, 1.0 / fps) if times is None else np.maximum(np.diff(times), 1e-6)
    speed[1:] = np.linalg.norm(np.diff(centre, axis=0), axis=1) / step
    roll = np.degrees(np.arctan2(re[:, 1] - le[:, 1], re[:, 0] - le[:, 0]))
    yaw = (lm[:, 30, 0] - (le[:, 0] + re[:, 0]) / 2) / iod
    ear = (_ear(lm[:, 36:42]) + _ear(lm[:, 42:48])) / 2
    gap = (np.linalg.norm(lm[:, 61] - lm[:, 67], axis=1) + np.linalg.norm(lm[:, 62] - lm[:, 66], axis=1)
           + np.linalg.norm(lm[:, 63] - lm[:, 65], axis=1)) / 3
    mouth = gap / np.maximum(np.linalg.norm(lm[:, 60] - lm[:, 64], axis=1), 1e-9)
    return {"speed": speed, "roll": roll, "yaw": yaw, "ear": ear, "mouth": mouth}


def _stats(x: np.ndarray):
    return (float(x.mean()), float(x.std()), float(x.max())) if x.size else (0.0, 0.0, 0.0)


def dynamics_vector(m: Dict[str, np.ndarray], ok: np.ndarray, moving: np.ndarray, closed: np.ndarray,
                    rows: np.ndarray, seconds: float) -> list:
    sel = rows[ok[rows]]
    if rows.size == 0 or sel.size == 0:
        return [0.0] * len(NAMES)
    mv = rows[moving[rows]]
    speed = m["speed"][mv]
    c = closed[rows] & ok[rows]
    blinks = int((np.diff(np.concatenate([[0], c.astype(np.int8)])) == 1).sum())
    mouth = m["mouth"][sel]
    return [sel.size / rows.size, *_stats(speed), float(m["roll"][sel].std()),
            float(m["yaw"][sel].std()), float(m["ear"][sel].mean()), float(m["ear"][sel].std()),
            blinks / max(seconds, 1e-9), *_stats(mouth)]


@VIDEO_EXTRACTORS.register("face-dynamics")
class FaceDynamicsExtractor(VideoExtractor):
    modality = "vision"

    def names(self):
        return list(NAMES)

    def extract(self, clip: Clip, times: np.ndarray):
        if clip.face_dir is None:
            raise FileNotFoundError(f"{clip.video_id}: no face-stage folder; run `bah faces` first")
        rec = read_face_record(clip.face_dir, clip.video_id, clip.n_frames)
        lm = rec["landmarks68"]
        ok = rec["detected"].astype(bool) if "detected" in rec else np.ones(len(lm), bool)
        ok = ok & np.isfinite(lm).all(axis=(1, 2))
        t = clip.frame_times() if len(clip.frame_times()) == lm.shape[0] else np.arange(lm.shape[0]) / clip.fps
        m = frame_measures(np.where(ok[:, None, None], lm, 0.0), clip.fps, t)
        moving = ok.copy()
        moving[1:] &= ok[:-1]  # a speed needs a face on this frame and the one before
        moving[0] = False
        med = float(np.median(m["ear"][ok])) if ok.any() else 0.0
        closed = ok & (m["ear"] < BLINK_FRACTION * med)
        win = [dynamics_vector(m, ok, moving, closed, np.flatnonzero((t >= s) & (t < e)), e - s) for s, e in times]
        vid = dynamics_vector(m, ok, moving, closed, np.arange(lm.shape[0]), clip.duration)
        return np.asarray(win), np.asarray(vid)
