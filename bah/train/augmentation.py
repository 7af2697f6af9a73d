"""Face transforms on whole batches of uint8 windows.

The original converted every frame to PIL, resized, cropped and normalised it in Python in
the loader workers. Here the loader only slices uint8 arrays; this module resizes the shorter
side to ``resize``, takes one random ``crop`` x ``crop`` window and one flip coin *per window*
(all frames of a window get the same crop and flip), and maps to [-1, 1], as tensor ops.

Cost: the crop is taken before anything becomes float, so only ``crop``² pixels per frame are
converted, and the mapping to [-1, 1] is one division and one subtraction, in place:
``x / 127.5 - 1`` is bit-for-bit the original's ``ToTensor`` + ``Normalize(0.5, 0.5)``
(``(x / 255 - 0.5) / 0.5``; halving and doubling are exact in binary floating point).

Resize (only when the stored faces are not ``resize`` px already):

* ``pil_exact`` (``--compat``): Pillow's bilinear resample, reproduced to the bit: the same
  filter coefficients, the same 22-bit fixed-point weights, the same horizontal-then-vertical
  passes with an 8-bit intermediate (two float64 matrix products, exact for these integers),
  on the CPU or the GPU alike;
* default, on the CPU: torch's antialiased bilinear on uint8 (the Pillow-SIMD algorithm with
  other fixed-point precision: within 1 grey level of Pillow);
* default, on a GPU: antialiased bilinear in float32, rounded (within 1 grey level of Pillow).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

_PRECISION_BITS = 32 - 8 - 2  # Pillow's Resample.c


def resized_size(h: int, w: int, short: int) -> Tuple[int, int]:
    """torchvision ``Resize(short)``: the shorter side becomes ``short``, the longer one is truncated."""
    if h <= w:
        return short, int(short * w / h)
    return int(short * h / w), short


@lru_cache(maxsize=32)
def pil_bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) integer weights of Pillow's bilinear resample along one axis
    (``precompute_coeffs`` + ``normalize_coeffs_8bpc`` of Pillow's Resample.c), as float64."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear filter's support is 1
    out = np.zeros((out_size, in_size), np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # C's (int) truncates toward zero, as int() does
        xmax = min(int(center + support + 0.5), in_size)
        ws = []
        for x in range(xmin, xmax):
            t = abs((x - center + 0.5) * ss)
            ws.append(1.0 - t if t < 1.0 else 0.0)
        total = 0.0
        for v in ws:  # sequential, as in C (numpy's pairwise sum rounds differently)
            total += v
        for i, v in enumerate(ws):
            k = v / total if total != 0.0 else v
            scaled = k * (1 << _PRECISION_BITS)
            out[xx, xmin + i] = float(int(scaled - 0.5) if k < 0 else int(scaled + 0.5))
    return out


def _pil_pass(x: torch.Tensor, weights: np.ndarray, dim: int) -> torch.Tensor:
    wt = torch.from_numpy(weights).to(x.device)
    y = torch.matmul(wt, x) if dim == -2 else torch.matmul(x, wt.t())
    # Pillow: start from 1 << (bits-1), shift right by bits, clip to 0..255
    return torch.floor_((y + float(1 << (_PRECISION_BITS - 1))) / float(1 << _PRECISION_BITS)).clamp_(0, 255)


def pil_bilinear_resize(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C, h, w) float64 holding Pillow's uint8 ``Image.resize(BILINEAR)`` output."""
    out_h, out_w = size
    y = x.to(torch.float64)
    if out_w != x.shape[-1]:
        y = _pil_pass(y, pil_bilinear_weights(x.shape[-1], out_w), -1)
    if out_h != x.shape[-2]:
        y = _pil_pass(y, pil_bilinear_weights(x.shape[-2], out_h), -2)
    return y


def channels_innermost(shape, device=None) -> torch.Tensor:
    """An empty float32 (B,L,3,H,W) tensor laid out as (B,L,H,W,3) in memory: the layout of the
    stored faces, so filling it is a straight copy, and the layout a channels-last backbone takes
    without converting (``reshape`` to (B*L,3,H,W) gives a channels-last tensor)."""
    b, l, ch, h, w = shape
    return torch.empty((b, l, h, w, ch), dtype=torch.float32, device=device).permute(0, 1, 4, 2, 3)


def crop_windows(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, c: int) -> torch.Tensor:
    """(B,L,3,H,W) -> (B,L,3,c,c): window b cropped at (top[b], left[b]) and mirrored where
    flip[b], by two gathers driven by index tensors (no per-window Python slicing)."""
    b, l, ch, h, w = x.shape
    steps = torch.arange(c, device=x.device)
    rows = (top[:, None] + steps)[:, None, None, :, None].expand(b, l, ch, c, w)
    cols = left[:, None] + torch.where(flip[:, None], c - 1 - steps, steps)
    return x.gather(3, rows).gather(4, cols[:, None, None, None, :].expand(b, l, ch, c, c))


@lru_cache(maxsize=1)
def _unit_table() -> np.ndarray:
    """x / 127.5 - 1 for every uint8 x, computed as the tensor path computes it (same bits)."""
    return torch.arange(256, dtype=torch.float32).div_(127.5).sub_(1.0).numpy()


def resize_faces(x: torch.Tensor, short: int, pil_exact: bool = False) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> shorter side ``short``: uint8, or (Pillow-exact, or on a GPU) float
    holding whole grey levels. Each face is resized on its own: the result does not depend on
    how faces are batched (the face cache relies on it)."""
    size = resized_size(x.shape[-2], x.shape[-1], short)
    if pil_exact:
        return pil_bilinear_resize(x, size)
    if x.device.type == "cpu":  # uint8 kernel; fastest on the channels-last view the batch already is
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255)


class FaceTransform:
    def __init__(self, resize: int = 48, crop: int = 40, train: bool = True, pil_exact: bool = False):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than resize {resize}")
        self.resize, self.crop, self.train, self.pil_exact = resize, crop, train, pil_exact

    def __call__(self, faces: torch.Tensor, generator: Optional[torch.Generator] = None,
                 out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B,L,S,S,3) uint8 -> (B,L,3,crop,crop) float32 in [-1,1], channels innermost in
        memory (``channels_innermost``), written into ``out`` when given (e.g. straight into a
        collated batch)."""
        if faces.dtype != torch.uint8 or faces.ndim != 5 or faces.shape[-1] != 3:
            raise ValueError(f"faces must be (B,L,H,W,3) uint8, got {tuple(faces.shape)} {faces.dtype}")
        b, l, h, w, _ = faces.shape
        x = faces.permute(0, 1, 4, 2, 3)  # a view: (B,L,3,H,W) with channels innermost in memory
        if min(h, w) != self.resize:
            y = resize_faces(x.reshape(b * l, 3, h, w), self.resize, self.pil_exact)
            x = y.reshape(b, l, 3, y.shape[-2], y.shape[-1])
        hh, ww = x.shape[-2:]
        c = self.crop
        if out is None:
            out = channels_innermost((b, l, 3, c, c), faces.device)
        if self.train:
            dev = "cpu" if generator is None else generator.device
            top = torch.randint(0, hh - c + 1, (b,), generator=generator, device=dev)
            left = torch.randint(0, ww - c + 1, (b,), generator=generator, device=dev)
            flip = torch.rand(b, generator=generator, device=dev) < 0.5
            if faces.device.type != "cpu":  # no .tolist(): the host would wait for the device every batch
                out.copy_(crop_windows(x, top.to(faces.device), left.to(faces.device), flip.to(faces.device), c))
                return out.div_(127.5).sub_(1.0)
            top, left, flip = top.tolist(), left.tolist(), flip.tolist()
        else:
            top, left, flip = [int(round((hh - c) / 2.0))] * b, [int(round((ww - c) / 2.0))] * b, [False] * b
            if faces.device.type != "cpu":
                return out.copy_(x[..., top[0]:top[0] + c, left[0]:left[0] + c]).div_(127.5).sub_(1.0)
        for i in range(b):
            # CPU: the crop gathered into one small uint8 block (a read of only the pixels kept)
            xi = x[i, :, :, top[i]:top[i] + c, left[i]:left[i] + c].permute(0, 2, 3, 1).contiguous()
            dst = out[i].permute(0, 2, 3, 1)
            if xi.dtype == torch.uint8 and dst.is_contiguous():
                # flipped by OpenCV in place (5x torch.flip on these blocks), then one pass into the
                # batch: x / 127.5 - 1 looked up for each byte. (No cv2.setNumThreads in loader
                # workers: in a child forked after OpenCV's pool ran it hangs; OpenCV resets the
                # pool in the child itself.)
                rows = xi.numpy().reshape(l * c, c, 3)
                if flip[i]:
                    cv2.flip(rows, 1, dst=rows)
                cv2.LUT(rows, _unit_table(), dst=dst.numpy().reshape(l * c, c, 3))
            else:  # Pillow-exact resize (float holding whole grey levels), or a caller's strided out
                dst.copy_(xi.flip(2) if flip[i] else xi).div_(127.5).sub_(1.0)
        return out
