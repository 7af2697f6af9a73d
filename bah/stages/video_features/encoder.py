"""``hf-encoder``: any Hugging Face image or audio encoder, loaded from a folder (never downloaded).

The model's input decides what it sees: ``pixel_values`` models (ViT, SigLIP, DINOv2, CLIP
vision) get ``encoder_frames`` video frames per window, evenly spaced inside it; ``input_values``
models (wav2vec2, HuBERT, WavLM) get the window's 16 kHz audio. A window's vector is the mean
over its frames / audio frames of the model's pooled output (``get_image_features`` when the
model has it, else ``pooler_output``, else the mean of the last hidden states); the video
vector is the mean of the window vectors. Preprocessing follows the folder's processor config
when one is saved (size, mean, std), else the model config's image size and 0.5 / 0.5.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from bah.stages.video_features.base import VIDEO_EXTRACTORS, Clip, VideoExtractor

SAMPLE_RATE = 16000


class HFEncoder:
    def __init__(self, folder: str, device: str = "cpu"):
        from transformers import AutoModel

        path = Path(folder).expanduser()
        if not (path / "config.json").is_file():
            raise ValueError(f"hf-encoder: {path} is not a Hugging Face model folder (no config.json)")
        try:
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"hf-encoder: cannot load {path}: {exc}") from None
        self.model.eval().to(device)
        self.device = device
        self.path = path
        self.kind = "image" if self.model.main_input_name == "pixel_values" else "audio"
        if self.model.main_input_name not in ("pixel_values", "input_values"):
            raise ValueError(f"hf-encoder: {path} takes {self.model.main_input_name!r}; an image (pixel_values) or "
                             f"audio (input_values) encoder is needed")
        proc = {}
        for name in ("preprocessor_config.json", "processor_config.json"):
            if (path / name).is_file():
                proc = json.loads((path / name).read_text(encoding="utf-8"))
                proc = proc.get("image_processor", proc)
                break
        cfg = getattr(self.model.config, "vision_config", None) or self.model.config
        size = proc.get("size") or getattr(cfg, "image_size", 224)
        if isinstance(size, dict):
            size = size.get("height") or size.get("shortest_edge") or 224
        self.size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self.mean = np.asarray(proc.get("image_mean", [0.5, 0.5, 0.5]), np.float32).reshape(3, 1, 1)
        self.std = np.asarray(proc.get("image_std", [0.5, 0.5, 0.5]), np.float32).reshape(3, 1, 1)
        self.dim = int(self._forward(self._dummy()).shape[-1])

    def _dummy(self) -> np.ndarray:
        if self.kind == "image":
            return np.zeros((1, 3, self.size, self.size), np.float32)
        return np.zeros((1, SAMPLE_RATE), np.float32)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            if self.kind == "image" and hasattr(self.model, "get_image_features"):
                out = self.model.get_image_features(pixel_values=t)
                out = getattr(out, "pooler_output", out)
            else:
                res = self.model(**{self.model.main_input_name: t})
                pooled = getattr(res, "pooler_output", None)
                out = pooled if pooled is not None else res.last_hidden_state.mean(1)
            return out.float().cpu().numpy()

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame -> the model's (3, size, size) float32 input."""
        from PIL import Image

        img = Image.fromarray(frame).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0
        return ((x - self.mean) / self.std).astype(np.float32)

    def images(self, prepared: List[np.ndarray]) -> np.ndarray:
        """(K, dim) for frames made ready by :meth:`prepare`."""
        return self._forward(np.stack(prepared).astype(np.float32))

    def audio(self, samples: np.ndarray) -> np.ndarray:
        """(dim,) for 16 kHz mono samples, normalised to zero mean / unit variance like wav2vec2's extractor."""
        x = np.asarray(samples, np.float32)
        if x.size < SAMPLE_RATE // 10:
            x = np.concatenate([x, np.zeros(SAMPLE_RATE // 10 - x.size, np.float32)])
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        return self._forward(x[None])[0]


@VIDEO_EXTRACTORS.register("hf-encoder")
class HFEncoderExtractor(VideoExtractor):
    modality = "encoder"
    result_keys = ("encoder_path", "encoder_frames")

    def __init__(self, settings=None, encoder: Optional[HFEncoder] = None):
        super().__init__(settings)
        if encoder is None and not self.settings.encoder_path:
            raise ValueError("hf-encoder needs a model folder: --set video_features.encoder_path=DIR "
                             "(no encoder weights ship with any package)")
        self._encoder = encoder

    def encoder(self) -> HFEncoder:
        if self._encoder is None:
            self._encoder = HFEncoder(self.settings.encoder_path, self.settings.device)
        return self._encoder

    def names(self) -> List[str]:
        return [f"enc{i}" for i in range(self.encoder().dim)]

    def meta(self):
        enc = self.encoder()
        return {**super().meta(), "path": str(enc.path), "input": enc.kind}

    def extract(self, clip: Clip, times: np.ndarray):
        enc = self.encoder()
        if enc.kind == "audio":
            audio = clip.audio()
            if audio is None or audio.size == 0:
                clip.warnings.append("hf-encoder: no audio track; zeros")
                win = np.zeros((times.shape[0], enc.dim))
            else:
                win = np.stack([enc.audio(audio[int(s * SAMPLE_RATE):max(int(e * SAMPLE_RATE), int(s * SAMPLE_RATE) + 1)])
                                for s, e in times])
        else:
            win = self._image_windows(clip, times, enc)
        return win, win.mean(0)

    def _image_windows(self, clip: Clip, times: np.ndarray, enc: HFEncoder) -> np.ndarray:
        """Frames at evenly spaced times inside each window, decoded in one streaming pass."""
        from bah.core.media import frames_at, iter_frames

        k = self.settings.encoder_frames
        frame_t = clip.frame_times() if clip.n_frames else np.zeros(1)  # recorded times: VFR frames
        want = {}
        for w, (s, e) in enumerate(times):
            for j in range(k):
                t = s + (e - s) * (j + 0.5) / k
                want.setdefault(int(frames_at(frame_t, t)), []).append(w)
        # only model-sized inputs are kept, never full frames: memory is W x k small images
        picked = {w: [] for w in range(times.shape[0])}
        last = None
        for i, frame in enumerate(iter_frames(clip.path)):
            last = frame
            for w in want.pop(i, ()):
                picked[w].append(enc.prepare(frame))
            if not want:
                break
        for i, ws in want.items():  # frames past the decoded end show the last one
            if last is None:
                raise ValueError(f"{clip.video_id}: no frame could be decoded from {clip.path}")
            for w in ws:
                picked[w].append(enc.prepare(last))
        return np.stack([enc.images(picked[w]).mean(0) for w in range(times.shape[0])])
