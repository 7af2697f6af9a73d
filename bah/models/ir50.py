"""The arcface IR-50 face backbone (40x40 input, 512-d L2-normalised embedding).

Module names and registration order reproduce the original ``VisualBackbone(mode='ir')``
(``backbone.input_layer``, ``backbone.output_layer``, ``backbone.body``, ``logits``), so
``res50_ir_0.887.pth`` loads strictly and every full model carries the same 351 entries
under ``spatial.visual.``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import nn

# (in_channel, depth, units, first stride) per stage; 40 -> 40 -> 20 -> 10 -> 5.
IR50_STAGES = ((64, 64, 3, 1), (64, 128, 4, 2), (128, 256, 14, 2), (256, 512, 3, 2))


class BottleneckIR(nn.Module):
    """BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN, plus a shortcut."""

    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """Inner IR-50 ``Backbone``; key order input_layer, output_layer, body as in the original."""

    def __init__(self, input_size: int = 40, embedding_dim: int = 512, drop_ratio: float = 0.4):
        super().__init__()
        if input_size % 8:
            raise ValueError(f"IR-50 input size must be a multiple of 8, got {input_size}")
        self.input_size = input_size
        self.embedding_dim = embedding_dim
        final = input_size // 8
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(),
            nn.Linear(512 * final * final, embedding_dim), nn.BatchNorm1d(embedding_dim))
        units = []
        for in_ch, depth, n, stride in IR50_STAGES:
            units.append(BottleneckIR(in_ch, depth, stride))
            units.extend(BottleneckIR(depth, depth, 1) for _ in range(n - 1))
        self.body = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.input_layer(x))
        # nn.Flatten (reshape), not the original's .view: works on channels-last tensors too.
        x = self.output_layer(x)
        if x.dtype in (torch.float16, torch.bfloat16):
            # Under autocast, normalise in float32 so the unit norm survives the rounding.
            x = x.float()
        return x / x.norm(2, dim=1, keepdim=True)  # the original's l2_norm (no epsilon)


class VisualBackbone(nn.Module):
    """The original wrapper: IR-50 under ``backbone`` plus an unused 8-way ``logits`` head.

    ``forward`` returns the 512-d L2-normalised embedding (the head is never applied,
    exactly as in the original training code); it exists so the weight file loads strictly.
    """

    input_size = 40
    out_dim = 512

    def __init__(self, input_size: int = 40, num_classes: int = 8, embedding_dim: int = 512):
        super().__init__()
        self.backbone = IR50(input_size=input_size, embedding_dim=embedding_dim)
        self.logits = nn.Linear(embedding_dim, num_classes)
        self.input_size = input_size
        self.out_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, 3, S, S) faces in [-1, 1] -> (N, 512)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"IR-50 expects (N, 3, H, W) faces, got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(f"IR-50 was built for {self.input_size}x{self.input_size} faces, "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        return self.backbone(x)


def build_ir50(input_size: int = 40, weights: Union[str, Path, None] = None) -> VisualBackbone:
    """Build the IR-50 wrapper; with ``weights`` load ``res50_ir_0.887.pth`` strictly."""
    model = VisualBackbone(input_size=input_size)
    if weights is not None:
        load_ir50_weights(weights, model)
    return model


def load_ir50_weights(path_or_sd: Union[str, Path, Mapping[str, Any]],
                      model: VisualBackbone | None = None) -> VisualBackbone:
    """Load an IR-50 weight file (the ``VisualBackbone`` format, e.g. ``res50_ir_0.887.pth``).

    Also accepts the inner ``Backbone`` format (no ``backbone.`` prefix, no ``logits``):
    then the unused 8-way head keeps its fresh initialisation. ``module.`` prefixes are
    stripped. Loading is strict otherwise; a mismatch names the file and the keys.
    """
    from .checkpoint import read_state_dict, strip_prefix

    model = model if model is not None else VisualBackbone()
    sd, source = read_state_dict(path_or_sd)
    sd = strip_prefix(sd, "module.")
    if not any(k.startswith("backbone.") for k in sd):
        target = model.backbone
    else:
        target = model
    try:
        target.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(f"{source}: not an IR-50 weight file for {model.input_size}x{model.input_size} "
                           f"input: {exc}") from None
    return model
