"""Unimodal baseline: one modality through a TCN + BN, then the CAN/JMT per-frame head.

The reference point for the fusion models (the paper's unimodal rows): same TCN, same
head (Linear -> BN -> LeakyReLU -> Linear), no fusion. Keys: ``temporal.<m>``, ``bn.<m>``,
``spatial.visual`` (faces only), ``bn1``, ``fc1``, ``fc2``.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torch import nn

from .base import MODELS, FrameModel, MaskedBatchNorm1d, head_forward


@MODELS.register("unimodal")
class Unimodal(FrameModel):
    model_name = "Unimodal"

    def __init__(self, modalities, compat=False, **kw):
        super().__init__(modalities, compat, **kw)
        if len(self.modalities) != 1:
            raise ValueError(f"the unimodal model takes exactly one modality, got {[m.name for m in self.modalities]}")
        self._build_temporal()
        self._build_bn()
        self._build_spatial()
        width = self.out_channels(self.modalities[0])
        self.bn1 = MaskedBatchNorm1d(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, self.num_classes)

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        feats, bsz, length = self._features(inputs)
        mask = self._mask(mask, bsz, length)
        per_mod = {name: x.transpose(1, 2) for name, x in self._temporal(feats, mask).items()}
        fused = per_mod[self.modalities[0].name]
        logits = head_forward(self.fc1, self.bn1, self.fc2, fused, mask)
        return self._finish(logits, fused, per_mod)
