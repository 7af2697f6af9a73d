"""The face stage: dlib detection, five-point alignment, packing into one array per video.

Registries: ``DETECTORS`` (hog, cnn) and ``FILL_POLICIES`` (backfill, compat). The config
section is ``faces`` (``FaceConfig``). Commands: ``bah faces`` (``bah.stages.faces.stage``) and
``bah pack-faces`` (``bah.stages.faces.packing``).
"""
from bah.stages.faces.alignment import arcface_template, compat_similarity, fit_similarity, five_points
from bah.stages.faces.detector import DETECTORS, Detection, FaceDetector, LandmarkPredictor
from bah.stages.faces.settings import FaceConfig
from bah.stages.faces.tracking import FILL_POLICIES, FaceRecord, FaceTracker, NoFaceError

__all__ = [
    "DETECTORS", "FILL_POLICIES", "Detection", "FaceConfig", "FaceDetector", "FaceRecord", "FaceTracker",
    "LandmarkPredictor", "NoFaceError", "arcface_template", "compat_similarity", "fit_similarity", "five_points",
]
