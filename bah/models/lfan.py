"""LFAN: leader-follower attention network (ABAW3), original-training.md §4.3.

Per modality a TCN + BN; then, at every frame, multi-head attention across the M modality
tokens (each projected to ``modal_dim``), V added back, heads and modalities
concatenated, Linear -> Dropout -> LayerNorm; the head reads the leader (first modality)
features next to the fused ones. Everything after the causal TCNs is per frame, so LFAN is
causal, and in fixed mode it runs on any length L; compat mode keeps the original's
restriction to exactly ``window_length`` frames (the trainer then stitches windows).
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from .base import LFAN_CHANNELS, MODELS, FrameModel, Modality


class MultimodalMultiheadAttention(nn.Module):
    def __init__(self, modalities: List[Modality], input_dims: Mapping[str, int], modal_dim: int, num_heads: int):
        super().__init__()
        if modal_dim % num_heads:
            raise ValueError(f"modal_dim {modal_dim} must be a multiple of num_heads {num_heads}")
        self.branches = [m.branch for m in modalities]
        self.modal_dim, self.num_heads, self.head_dim = modal_dim, num_heads, modal_dim // num_heads
        self.qkv_proj = nn.ModuleDict({b: nn.Linear(input_dims[b], 3 * modal_dim) for b in self.branches})
        self.o_proj = nn.Linear(modal_dim * len(self.branches), modal_dim * len(self.branches))
        for b in self.branches:
            nn.init.xavier_uniform_(self.qkv_proj[b].weight)
            nn.init.zeros_(self.qkv_proj[b].bias)
        nn.init.xavier_uniform_(self.o_proj.weight)
        nn.init.zeros_(self.o_proj.bias)

    def forward(self, x: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``x`` branch -> (B, L, C_m); returns (B, L, M * modal_dim)."""
        q, k, v = [], [], []
        for b in self.branches:
            qkv = self.qkv_proj[b](x[b])
            bsz, length, _ = qkv.shape
            # The 3*modal_dim outputs are laid out per head as [q | k | v] (original layout).
            qkv = qkv.reshape(bsz, length, self.num_heads, 1, 3 * self.head_dim)
            qi, ki, vi = qkv.chunk(3, dim=-1)
            q.append(qi), k.append(ki), v.append(vi)
        Q, K, V = torch.cat(q, -2), torch.cat(k, -2), torch.cat(v, -2)  # (B, L, H, M, d)
        scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(self.head_dim)
        values = torch.matmul(torch.softmax(scores, dim=-1), V) + V
        bsz, length = values.shape[:2]
        # (B, L, H, M, d) -> head-major, then modality, then dims: the original's order.
        values = values.reshape(bsz, length, self.modal_dim * len(self.branches))
        return self.o_proj(values)


class MultiModalEncoderBlock(nn.Module):
    def __init__(self, modalities, input_dims, modal_dim, num_heads, dropout):
        super().__init__()
        self.self_attn = MultimodalMultiheadAttention(modalities, input_dims, modal_dim, num_heads)
        self.norm1 = nn.LayerNorm(modal_dim * len(modalities))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.norm1(self.dropout(self.self_attn(x)))


class MultimodalTransformerEncoder(nn.Module):
    def __init__(self, modalities, input_dims, modal_dim, num_heads, dropout):
        super().__init__()
        self.layers = MultiModalEncoderBlock(modalities, input_dims, modal_dim, num_heads, dropout)

    def forward(self, x):
        return self.layers(x)


@MODELS.register("lfan")
class LFAN(FrameModel):
    model_name = "LFAN"
    original_dropout = 0.1
    channel_table = LFAN_CHANNELS

    def __init__(self, modalities, compat=False, window_length: int = 696, modal_dim: int = 32,
                 num_heads: int = 2, **kw):
        super().__init__(modalities, compat, **kw)
        self.window_length = int(window_length)
        self.modal_dim, self.num_heads = int(modal_dim), int(num_heads)
        # Original registration order: temporal, spatial, bn, fusion, regressor.
        self._build_temporal()
        self._build_spatial()
        self._build_bn()
        dims = {m.branch: self.out_channels(m) for m in self.modalities}
        self.fusion = MultimodalTransformerEncoder(self.modalities, dims, self.modal_dim, self.num_heads, self.dropout)
        self.leader = self.modalities[0]
        self.regressor = nn.Linear(dims[self.leader.branch] + self.modal_dim * len(self.modalities), self.num_classes)

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        feats, bsz, length = self._features(inputs)
        if self.compat.lfan_fixed_window and length != self.window_length:
            raise ValueError(f"LFAN (compat) processes exactly window_length={self.window_length} frames, got "
                             f"{length}; use windowed inference or fixed mode")
        mask = self._mask(mask, bsz, length)
        per_mod = {name: x.transpose(1, 2) for name, x in self._temporal(feats, mask).items()}
        by_branch = {m.branch: per_mod[m.name] for m in self.modalities}
        fused = self.fusion(by_branch)
        logits = self.regressor(torch.cat((per_mod[self.leader.name], fused), dim=-1))
        return self._finish(logits, fused, per_mod)
