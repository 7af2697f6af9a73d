"""CAN: gated attention fusion (ABAW3), original-training.md §4.4.

Per modality a TCN + BN, a Linear to 128 per modality (matched by position, i.e. by the
order of ``modalities``), concatenation, softmax gates over the features, gated
concatenation, then Linear -> BN -> LeakyReLU -> Linear per frame. ``conv_c`` is a dead
member of the original kept only so checkpoints load strictly.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .base import MODELS, FrameModel, MaskedBatchNorm1d, head_forward


class AttentionFusion(nn.Module):
    def __init__(self, num_feats_modality: Sequence[int], num_out_feats: int = 128):
        super().__init__()
        self.attn = nn.ModuleList([nn.Linear(n, num_out_feats) for n in num_feats_modality])
        width = num_out_feats * len(num_feats_modality)
        self.weights = nn.Linear(width, width)
        self.num_features = width

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``xs`` per modality (B, L, C_m), in model order; returns (B, L, 128 * M)."""
        proj = torch.cat([layer(x) for layer, x in zip(self.attn, xs)], -1)
        return F.softmax(self.weights(proj), dim=-1) * proj


@MODELS.register("can")
class CAN(FrameModel):
    model_name = "CAN"

    def __init__(self, modalities, compat=False, fusion_dim: int = 128, **kw):
        super().__init__(modalities, compat, **kw)
        # Original registration order: temporal, bn, spatial, fuse, conv_c, bn1, fc1, fc2.
        self._build_temporal()
        self._build_bn()
        self._build_spatial()
        width = fusion_dim * len(self.modalities)
        self.fuse = AttentionFusion([self.out_channels(m) for m in self.modalities], fusion_dim)
        self.conv_c = nn.Conv1d(width, fusion_dim, 1)  # dead in the original too
        self.bn1 = MaskedBatchNorm1d(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, self.num_classes)

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        feats, bsz, length = self._features(inputs)
        mask = self._mask(mask, bsz, length)
        per_mod = {name: x.transpose(1, 2) for name, x in self._temporal(feats, mask).items()}
        fused = self.fuse([per_mod[m.name] for m in self.modalities])
        logits = head_forward(self.fc1, self.bn1, self.fc2, fused, mask)
        return self._finish(logits, fused, per_mod)
