"""A small multiple-instance model over window features, with text-anchored gated fusion.

Each modality's windows go through its own encoder (Linear -> GELU -> dropout) to a shared
width H. With an anchor modality (the text), every other modality is added to it as a gated
residual, g_m = sigmoid(W [h_anchor; h_m]), h = h_anchor + sum_m g_m * h_m, so a weak channel
can only nudge the text representation, never replace it. One linear head scores each window;
a pooling (registry ``POOLINGS``) turns the window scores into one video logit.

Training loss: video BCE + ``window_weight`` x window BCE against the window labels from the
annotated A/H segments (videos without an annotation skip the window term).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from bah.core.registry import Registry

from .features import VideoTable
from .learner import VideoLearner

__all__ = ["POOLINGS", "MILNet", "MILModel", "masked_fill_value"]

POOLINGS: Registry[type] = Registry("MIL pooling", nn.Module)


def masked_fill_value(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min


@POOLINGS.register("max")
class MaxPooling(nn.Module):
    def __init__(self, hidden: int = 0, lse_r: float = 5.0):
        super().__init__()

    def forward(self, scores, hidden, mask):
        return scores.masked_fill(~mask, masked_fill_value(scores.dtype)).max(dim=1).values


@POOLINGS.register("mean")
class MeanPooling(nn.Module):
    def __init__(self, hidden: int = 0, lse_r: float = 5.0):
        super().__init__()

    def forward(self, scores, hidden, mask):
        m = mask.to(scores.dtype)
        return (scores * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


@POOLINGS.register("lse")
class LogSumExpPooling(nn.Module):
    """(1/r) log mean exp(r s): between the mean (r -> 0) and the max (r -> inf)."""

    def __init__(self, hidden: int = 0, lse_r: float = 5.0):
        super().__init__()
        if lse_r <= 0:
            raise ValueError(f"lse_r must be > 0, got {lse_r}")
        self.r = float(lse_r)

    def forward(self, scores, hidden, mask):
        z = (self.r * scores).masked_fill(~mask, masked_fill_value(scores.dtype))
        count = mask.sum(dim=1).clamp_min(1).to(scores.dtype)
        return (torch.logsumexp(z, dim=1) - torch.log(count)) / self.r


@POOLINGS.register("attention")
class AttentionPooling(nn.Module):
    """Gated attention MIL (Ilse et al. 2018): a_w = w^T (tanh(V h_w) * sigmoid(U h_w)); the video
    logit is the softmax(a)-weighted mean of the window logits (the same as pooling the hidden
    states first, since the head is linear)."""

    def __init__(self, hidden: int = 64, lse_r: float = 5.0):
        super().__init__()
        self.v = nn.Linear(hidden, hidden)
        self.u = nn.Linear(hidden, hidden)
        self.w = nn.Linear(hidden, 1)

    def weights(self, hidden, mask):
        a = self.w(torch.tanh(self.v(hidden)) * torch.sigmoid(self.u(hidden))).squeeze(-1)
        return torch.softmax(a.masked_fill(~mask, masked_fill_value(a.dtype)), dim=1)

    def forward(self, scores, hidden, mask):
        return (self.weights(hidden, mask) * scores).sum(dim=1)


class MILNet(nn.Module):
    def __init__(self, dims: Dict[str, int], anchor: Optional[str] = None, hidden: int = 64,
                 pooling: str = "attention", dropout: float = 0.1, lse_r: float = 5.0):
        super().__init__()
        if anchor is not None and anchor not in dims:
            raise ValueError(f"MIL anchor {anchor!r} is not one of the learner's features {list(dims)}")
        self.names = list(dims)
        self.anchor = anchor
        self.encoders = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout)) for m, d in dims.items()})
        others = [m for m in self.names if m != anchor] if anchor is not None else []
        self.gates = nn.ModuleDict({m: nn.Linear(2 * hidden, hidden) for m in others})
        self.head = nn.Linear(hidden, 1)
        self.pool = POOLINGS.create(pooling, hidden=hidden, lse_r=lse_r)

    def forward(self, inputs: Dict[str, torch.Tensor], mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = {m: self.encoders[m](inputs[m]) for m in self.names}
        gates = {}
        if self.anchor is None:
            fused = torch.stack([h[m] for m in self.names]).mean(dim=0)
        else:
            fused = h[self.anchor]
            for m, gate in self.gates.items():
                gates[m] = torch.sigmoid(gate(torch.cat([h[self.anchor], h[m]], dim=-1)))
                fused = fused + gates[m] * h[m]
        scores = self.head(fused).squeeze(-1)
        return {"logits": self.pool(scores, fused, mask), "window_logits": scores, "feat_fused": fused,
                "gates": gates}


def _pad(seqs: Sequence[np.ndarray], dim: int):
    """(B, Wmax, D) float32 and the (B, Wmax) mask; a video without windows gets one zero window
    (the training mean after standardisation) so that every pooling is defined."""
    lengths = [max(len(s), 1) for s in seqs]
    out = np.zeros((len(seqs), max(lengths), dim), dtype=np.float32)
    mask = np.zeros((len(seqs), max(lengths)), dtype=bool)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = s
        mask[i, : lengths[i]] = True
    return out, mask


class MILModel:
    """The torch side of the ``mil`` learner (``learners.MILLearner``): standardisation of the
    training windows, the network, its training loop and prediction."""

    def __init__(self, anchor: Optional[str] = None, pooling: str = "attention", hidden: int = 64, epochs: int = 60,
                 lr: float = 3e-3, weight_decay: float = 1e-3, batch_size: int = 32, window_weight: float = 0.5,
                 dropout: float = 0.1, lse_r: float = 5.0):
        POOLINGS.get(pooling)
        self.anchor, self.pooling, self.hidden, self.epochs = anchor, pooling, int(hidden), int(epochs)
        self.lr, self.weight_decay, self.batch_size = float(lr), float(weight_decay), int(batch_size)
        self.window_weight, self.dropout, self.lse_r = float(window_weight), float(dropout), float(lse_r)

    def _tensors(self, table: VideoTable):
        """Standardised, padded windows of every row, built once per fit / predict call."""
        inputs, mask = {}, None
        for m in self.names:
            seqs = [(w - self.mean[m]) / self.std[m] for w in table.windows[m]]
            arr, mask = _pad(seqs, self.mean[m].shape[0])
            inputs[m] = torch.from_numpy(arr)
        return inputs, torch.from_numpy(mask)

    def fit(self, table: VideoTable, names: Sequence[str], seed: int) -> "MILModel":
        y = VideoLearner.targets(table)
        self.names = list(names)
        self.mean, self.std = {}, {}
        for m in self.names:
            allw = np.concatenate([w for w in table.windows[m] if len(w)] or [table.pooled[m]])
            self.mean[m] = allw.mean(axis=0)
            self.std[m] = np.where(allw.std(axis=0) > 1e-6, allw.std(axis=0), 1.0).astype(np.float32)
        torch.manual_seed(seed)
        dims = {m: int(self.mean[m].shape[0]) for m in self.names}
        self.net = MILNet(dims, self.anchor, self.hidden, self.pooling, self.dropout, self.lse_r)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rng = np.random.default_rng(seed)
        bce = nn.functional.binary_cross_entropy_with_logits
        inputs_all, mask_all = self._tensors(table)
        wtarget, wknown = self._window_targets(table, mask_all)
        target_all = torch.from_numpy(y.astype(np.float32))
        self.net.train()
        for _ in range(self.epochs):
            order = torch.from_numpy(rng.permutation(len(table)))
            for start in range(0, len(order), self.batch_size):
                rows = order[start: start + self.batch_size]
                mask = mask_all[rows]
                out = self.net({m: x[rows] for m, x in inputs_all.items()}, mask)
                loss = bce(out["logits"], target_all[rows])
                known = wknown[rows]
                if self.window_weight > 0 and bool(known.any()):
                    wl = bce(out["window_logits"], wtarget[rows], reduction="none")
                    loss = loss + self.window_weight * (wl * known).sum() / known.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.net.eval()
        return self

    @staticmethod
    def _window_targets(table: VideoTable, mask: torch.Tensor):
        """(n, Wmax) window labels and where they are known (annotated videos, real windows)."""
        target = torch.zeros(mask.shape, dtype=torch.float32)
        known = torch.zeros(mask.shape, dtype=torch.bool)
        for i, wl in enumerate(table.window_labels or ()):
            if wl is not None and len(wl):
                target[i, : len(wl)] = torch.from_numpy(wl)
                known[i, : len(wl)] = True
        return target, known

    @torch.no_grad()
    def predict(self, table: VideoTable) -> np.ndarray:
        if len(table) == 0:
            return np.zeros(0)
        inputs, mask = self._tensors(table)
        return torch.sigmoid(self.net(inputs, mask)["logits"]).double().numpy()
