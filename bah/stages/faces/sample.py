"""Synthetic talking-face videos for tests and benchmarks (no real faces are shipped).

The face is scikit-image's ``astronaut`` portrait, cropped around the head and composited on a
textured background; it drifts and gently zooms over time, and a mouth band is stretched to fake
speech. Written with PyAV (H.264 when available, else MPEG-4 part 2).
"""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Optional

import cv2
import numpy as np


@functools.lru_cache(maxsize=1)
def _portrait() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()[30:230, 140:320]  # the head, face about 87 px wide


@functools.lru_cache(maxsize=4)
def _background(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    bg = np.stack([(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)),
                   np.full_like(xx, 90)], -1).astype(np.uint8)
    bg.setflags(write=False)
    return bg


def placement(k: int, width: int = 640, height: int = 480, fps: float = 25.0, face_px: int = 180) -> np.ndarray:
    """The exact 2x3 similarity that puts portrait pixels into frame ``k`` (the ground truth)."""
    t = k / fps
    scale = face_px / 87.0 * (1.0 + 0.05 * np.sin(2 * np.pi * 0.2 * t))
    ph, pw = (np.array(_portrait().shape[:2]) * scale)
    cx = (width - pw) / 2 + 0.25 * abs(width - pw) * np.sin(2 * np.pi * 0.1 * t)
    cy = (height - ph) / 2 + 0.25 * abs(height - ph) * np.cos(2 * np.pi * 0.13 * t)
    return np.array([[scale, 0.0, cx], [0.0, scale, cy]])


def synthetic_frame(k: int, width: int = 640, height: int = 480, fps: float = 25.0,
                    face_px: int = 180, face: bool = True, talk: bool = True) -> np.ndarray:
    """Frame ``k`` of the synthetic video (RGB uint8)."""
    bg = _background(width, height)
    if not face:
        return bg.copy()
    p = _portrait()
    if talk:  # fake speech: stretch a band around the mouth by up to 3 portrait pixels
        mouth = int(p.shape[0] * 0.675)
        open_px = int(round(3 * (0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * k / fps))))
        if open_px > 0:
            band = cv2.resize(p[mouth - 4: mouth + 4], (p.shape[1], 8 + open_px))
            p = np.concatenate([p[:mouth - 4], band, p[mouth + 4:]], 0)[: p.shape[0]]
    M = placement(k, width, height, fps, face_px)
    face_img = cv2.warpAffine(p, M, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(p.shape[:2], 255, np.uint8), M, (width, height), flags=cv2.INTER_LINEAR)
    a = mask[..., None].astype(np.uint16)
    return ((face_img * a + bg * (255 - a) + 127) // 255).astype(np.uint8)


def write_video(path: os.PathLike, n_frames: int, fps: int = 25, width: int = 640, height: int = 480,
                face_px: int = 180, face_frames: Optional[range] = None, codec: Optional[str] = None,
                talk: bool = True, stored_turns: int = 0) -> Path:
    """Write a synthetic talking-face video; ``face_frames`` limits on which frames the face shows.

    ``stored_turns`` stores every frame turned that many times 90 degrees counter-clockwise (as a
    phone held sideways records it); pair it with ``set_rotation`` so players turn it back.
    """
    from bah.core.media import write_video as encode

    def frames():
        for k in range(n_frames):
            show = face_frames is None or k in face_frames
            img = synthetic_frame(k, width, height, fps, face_px, face=show, talk=talk)
            yield np.ascontiguousarray(np.rot90(img, stored_turns)) if stored_turns % 4 else img

    path = Path(path)
    encode(path, frames(), fps, n_frames=n_frames, codec=codec or ("libx264", "mpeg4"), crf=20, preset="ultrafast",
           threads=0)
    return path


def set_rotation(src: os.PathLike, dest: os.PathLike, degrees: int) -> Path:
    """Copy a video adding rotation metadata (a display matrix), without re-encoding.

    ``degrees`` is the legacy ``rotate`` tag; FFmpeg (and bah.core.media) undo ``stored_turns=3`` for 90.
    """
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={degrees}", str(dest)], check=True)
    return Path(dest)
