"""Face transforms on whole batches of uint8 windows, on the training device.

The original converted every frame to PIL, resized, cropped and normalised it in Python in
the loader workers. Here the loader only slices uint8 arrays; this module resizes the shorter
side to ``resize``, takes one random ``crop`` x ``crop`` window and one flip coin *per window*
(all frames of a window get the same crop and flip), and maps to [-1, 1], as tensor ops.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


class FaceTransform:
    def __init__(self, resize: int = 48, crop: int = 40, train: bool = True):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than resize {resize}")
        self.resize, self.crop, self.train = resize, crop, train

    def __call__(self, faces: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(B,L,S,S,3) uint8 -> (B,L,3,crop,crop) float in [-1,1]."""
        if faces.dtype != torch.uint8 or faces.ndim != 5 or faces.shape[-1] != 3:
            raise ValueError(f"faces must be (B,L,H,W,3) uint8, got {tuple(faces.shape)} {faces.dtype}")
        b, l, h, w, _ = faces.shape
        x = faces.permute(0, 1, 4, 2, 3).reshape(b * l, 3, h, w)
        if min(h, w) != self.resize:
            scale = self.resize / min(h, w)
            size = (max(self.resize, round(h * scale)), max(self.resize, round(w * scale)))
            x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
            x = x.round_().clamp_(0, 255)
        x = x.reshape(b, l, 3, x.shape[-2], x.shape[-1])
        hh, ww = x.shape[-2:]
        c = self.crop
        if self.train:
            dev = "cpu" if generator is None else generator.device
            top = torch.randint(0, hh - c + 1, (b,), generator=generator, device=dev).tolist()
            left = torch.randint(0, ww - c + 1, (b,), generator=generator, device=dev).tolist()
            flip = (torch.rand(b, generator=generator, device=dev) < 0.5).tolist()
            out = []
            for i in range(b):
                xi = x[i, :, :, top[i]:top[i] + c, left[i]:left[i] + c]
                out.append(xi.flip(-1) if flip[i] else xi)
            x = torch.stack(out)
        else:
            top, left = int(round((hh - c) / 2.0)), int(round((ww - c) / 2.0))
            x = x[..., top:top + c, left:left + c]
        return x.float().div_(255.0).sub_(0.5).div_(0.5)
