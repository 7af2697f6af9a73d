"""NRC (Yang et al., NeurIPS 2021): neighbourhood reciprocity clustering over frame banks.

A feature bank (L2-normalised fused features) and a score bank (softmax) cover every valid
adaptation frame; one eval pass fills them, each step overwrites the batch's rows. Each frame is
pulled towards its K nearest neighbours' scores (weight = how often it appears in their M-lists,
0.1 when never) and towards their M neighbours (0.1), plus a diversity term. A/H-specific:
neighbours within ``exclude_radius`` frames of the same video are not neighbours (adjacent
frames are near-duplicates).
"""
from __future__ import annotations

from dataclasses import dataclass
import torch
import torch.nn.functional as F

from bah.train.engine import to_device

from .base import ADAPTERS, AdaptationData, Adapter, AdapterParams, batches, collect, create_optimizer, frame_rows, run_steps

EPS = 1e-5


def exclusion_mask(rows: torch.Tensor, video: torch.Tensor, frame: torch.Tensor, radius: int) -> torch.Tensor:
    """(len(rows), N) True where bank entry j may NOT be a neighbour of row i: itself, or the same
    video within ``radius`` frames."""
    n = len(video)
    same = torch.zeros(len(rows), n, dtype=torch.bool)
    same[torch.arange(len(rows)), rows] = True
    if radius > 0:
        near = (video[rows][:, None] == video[None]) & ((frame[rows][:, None] - frame[None]).abs() <= radius)
        same |= near
    return same


def neighbours(query: torch.Tensor, rows: torch.Tensor, bank: torch.Tensor, video: torch.Tensor,
               frame: torch.Tensor, k: int, radius: int, chunk: int = 2048) -> torch.Tensor:
    """Indices (len(rows), k) of the k most cosine-similar bank entries, exclusions applied.
    Chunked: a real participant has ~4.5 k frames and a batch x K queries ~ 30 k rows."""
    out = []
    for s in range(0, len(rows), chunk):
        sim = query[s:s + chunk] @ bank.t()
        sim = sim.masked_fill(exclusion_mask(rows[s:s + chunk], video, frame, radius).to(sim.device), float("-inf"))
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long)


def nrc_weights(rows: torch.Tensor, near: torch.Tensor, near_near: torch.Tensor, kappa: float = 0.1) -> torch.Tensor:
    """(B, K): the number of times row i appears among neighbour j's M neighbours, else ``kappa``."""
    match = (near_near == rows[:, None, None]).sum(-1).float()
    return torch.where(match > 0, match, torch.full_like(match, kappa))


@dataclass(frozen=True)
class NRCParams(AdapterParams):
    lr: float = 1e-2
    weight_decay: float = 5e-4
    lr_f: float = 0.1
    lr_b: float = 1.0
    lr_c: float = 1.0  # NRC trains the classifier too
    poly_decay: bool = True
    k: int = 5
    m: int = 5
    kappa: float = 0.1
    exclude_radius: int = 3
    div_weight: float = 1.0


class Banks:
    def __init__(self, feats: torch.Tensor, scores: torch.Tensor, video: torch.Tensor, frame: torch.Tensor):
        self.feats = F.normalize(feats.float(), dim=1)
        self.scores = scores.float().clone()
        self.video, self.frame = video, frame


def nrc_loss(feat: torch.Tensor, probs: torch.Tensor, rows: torch.Tensor, banks: Banks, p: NRCParams) -> torch.Tensor:
    """Update the banks at ``rows`` and return the NRC loss of the batch (valid frames only)."""
    f = F.normalize(feat.float(), dim=1)
    with torch.no_grad():
        banks.feats[rows] = f.detach().cpu()
        banks.scores[rows] = probs.detach().cpu()
        near = neighbours(f.detach().cpu(), rows, banks.feats, banks.video, banks.frame, p.k, p.exclude_radius)
        fn = banks.feats[near].reshape(-1, banks.feats.shape[1])
        nn_rows = near.reshape(-1)
        near_near = neighbours(fn, nn_rows, banks.feats, banks.video, banks.frame, p.m, p.exclude_radius)
        near_near = near_near.reshape(len(rows), p.k, p.m)
        w = nrc_weights(rows, near, near_near, p.kappa).to(probs.device)
        s_near = banks.scores[near].to(probs.device)  # (B, K, C)
        s_nn = banks.scores[near_near].reshape(len(rows), p.k * p.m, -1).to(probs.device)
    const = -(w * (probs[:, None, :] * s_near).sum(-1)).sum(1).mean()
    expanded = -(p.kappa * (probs[:, None, :] * s_nn).sum(-1)).sum(1).mean()
    mean = probs.mean(0)
    div = (mean * torch.log(mean + EPS)).sum()
    return const + expanded + p.div_weight * div


@ADAPTERS.register("nrc")
class NRC(Adapter):
    name = "nrc"
    Params = NRCParams

    def fit(self, model, target: AdaptationData, source=None):
        p = self.params
        a = collect(model, target)
        if target.n_frames <= p.k + 2 * p.exclude_radius + 1:
            raise ValueError(f"nrc: {target.n_frames} adaptation frames are too few for k={p.k}")
        banks = Banks(a["feats"], a["probs"], a["video"], a["frame"])
        self.banks = banks
        opt = create_optimizer(model, p)
        it = batches(target.windows, p.batch_size, target.seed)
        offsets = target.offsets

        def step_loss(i):
            raw = next(it)
            b = to_device(raw, target.device)
            out = model(b["inputs"], mask=b["mask"])
            m = b["mask"]
            rows = frame_rows(raw, offsets)[m.cpu()]
            # a window's padded tail repeats its last frame: keep each bank row once per batch
            rows, first = _unique_first(rows)
            feat = out["feat_fused"][m][first]
            probs = torch.softmax(out["logits"][m].float(), -1)[first]
            return nrc_loss(feat, probs, rows, banks, p)

        self.history["loss"] = run_steps(model, opt, p, step_loss, "nrc", selector=target.selector)
        return model


def _unique_first(rows: torch.Tensor):
    uniq, inv = torch.unique(rows, return_inverse=True)
    first = torch.full((len(uniq),), len(rows), dtype=torch.long)
    first.scatter_reduce_(0, inv, torch.arange(len(rows)), reduce="amin")
    return uniq, first
