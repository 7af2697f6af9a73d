"""The VGGish network (torchvggish layout) in plain PyTorch, and the ``vggish`` extractor.

The module names match the torchvggish weight file ``vggish-10086976.pth`` key for key
(``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``), so those weights load strictly.
As in the original preprocessing (``postprocess=False``) there is no PCA/quantisation and
the 128-d output layer has no ReLU.
"""
from __future__ import annotations

import io
import logging
import os
from typing import Mapping, Optional

import numpy as np
import torch
from torch import nn

from bah.stages.features import audio as front
from bah.stages.features.base import EXTRACTORS, Extractor, VideoInput, resolve_device

log = logging.getLogger(__name__)

EMBEDDING_DIM = 128
_LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


class VGGish(nn.Module):
    """(E, 1, 96, 64) log-mel examples -> (E, 128) embeddings."""

    def __init__(self) -> None:
        super().__init__()
        layers: list = []
        c_in = 1
        for v in _LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_DIM),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = self.features(x)
        # torchvggish flattens in (time, freq, channel) order: the FC weights depend on it.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.embeddings(x)


def load_vggish_weights(model: nn.Module, path: "os.PathLike | Mapping | io.IOBase") -> nn.Module:
    """Load a torchvggish-format state dict (a file, an open binary stream or the dict itself)
    strictly; the error names the missing / unexpected keys."""
    if isinstance(path, Mapping):
        state = path
        path = "state dict"
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"VGGish weights not found: {path}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: not a state dict (got {type(state).__name__})")
    # The PCA buffers of postprocess=True are not part of this network; ignore them only.
    state = {k: v for k, v in state.items() if not k.startswith("pproc.")}
    res = model.load_state_dict(state, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise ValueError(
            f"{path}: not a torchvggish state dict; missing keys {res.missing_keys[:6]}, "
            f"unexpected keys {res.unexpected_keys[:6]}"
        )
    return model


def embed_examples(model: nn.Module, examples: np.ndarray, batch_size: int = 256,
                   device: str = "cpu") -> np.ndarray:
    """(E, 96, 64) examples -> (E, 128) float32, in batches (the network casts to float32)."""
    out = np.zeros((examples.shape[0], EMBEDDING_DIM), np.float32)
    with torch.inference_mode():
        for s in range(0, examples.shape[0], max(1, batch_size)):
            x = torch.from_numpy(np.ascontiguousarray(examples[s:s + batch_size], dtype=np.float32))
            out[s:s + x.shape[0]] = model(x.to(device).unsqueeze(1)).float().cpu().numpy()
    return out


@EXTRACTORS.register("vggish")
class VGGishExtractor(Extractor):
    """128-d VGGish embeddings per frame.

    Default: each frame's 0.96 s example is centred on the frame's recorded time, float audio.
    ``compat``: the original's forward-looking examples hopped by 1/fps, its one-row shift
    (frame i gets row i+1) and its 16-bit wav (audio rounded to int16).
    """

    result_keys = ("vggish_weights", "compat")

    modality = "audio"

    def __init__(self, settings=None, model: Optional[nn.Module] = None):
        super().__init__(settings)
        self.device = resolve_device(getattr(self.settings, "device", "auto"))
        if model is None:
            path = getattr(self.settings, "vggish_weights", None)
            if not path:
                raise ValueError(
                    "vggish needs the torchvggish weights (vggish-10086976.pth): set features.vggish_weights=PATH; "
                    "the weight-free alternative is the 'logmel' extractor"
                )
            model = load_vggish_weights(VGGish(), path)
        self.model = model.eval().to(self.device)

    def dim(self) -> int:
        return EMBEDDING_DIM

    def meta(self):
        return {**super().meta(), "compat": bool(getattr(self.settings, "compat", False)),
                "weights": str(getattr(self.settings, "vggish_weights", None))}

    def extract(self, video: VideoInput) -> np.ndarray:
        audio = front.audio_or_none(video, self.name, EMBEDDING_DIM)
        if audio is None:
            return np.zeros((video.n_frames, EMBEDDING_DIM), np.float32)
        bs = int(getattr(self.settings, "batch_size", 256))
        if getattr(self.settings, "compat", False):
            # the original decoded to a 16-bit wav through ffmpeg before its front end
            _, _, examples = front.original_examples(front.wav16_round_trip(audio), video.fps)
            emb = embed_examples(self.model, examples, bs, self.device)
            return emb[front.compat_rows(video.n_frames, emb.shape[0])]
        examples = front.centred_examples(audio, video.times, video.fps)
        return embed_examples(self.model, examples, bs, self.device)
