"""SHOT (Liang et al., ICML 2020): frozen head, information maximisation + clustering pseudo-labels.

The head ("C": ``fc1/bn1/fc2`` or ``regressor``) is frozen and kept in eval mode; the TCN branches
train at lr x 0.1 and the fusion at lr x 1. Loss = mean H(p_i) - H(mean p) + beta * CE(pseudo).
``div_prior: source`` (A/H-specific) replaces -H(mean p), which pushes predictions towards 50/50,
by KL(mean p || source prior) (A/H frames are about 20 %).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F

from bah.train.engine import to_device

from .base import (ADAPTERS, AdaptationData, Adapter, AdapterParams, HEAD_PREFIXES, batches, collect,
                   create_optimizer, frame_rows, masked_ce, run_steps)

EPS = 1e-5


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p + EPS)).sum(-1)


def im_loss(probs: torch.Tensor, prior: torch.Tensor = None) -> torch.Tensor:
    """Mean per-sample entropy minus the entropy of the mean (or + KL(mean || prior))."""
    mean = probs.mean(0)
    div = -entropy(mean) if prior is None else (mean * torch.log((mean + EPS) / (prior + EPS))).sum()
    return entropy(probs).mean() + div


def shot_pseudo_labels(feats: torch.Tensor, probs: torch.Tensor, threshold: int = 0, rounds: int = 2) -> torch.Tensor:
    """SHOT's clustering: features with a constant 1 appended, L2-normalised; centroids weighted by
    the softmax, nearest centroid by cosine; then centroids of the hard labels, assigned again."""
    f = torch.cat([feats.float(), torch.ones(len(feats), 1)], 1)
    f = F.normalize(f, dim=1)
    c = probs.shape[1]
    aff = probs.float()
    counts = torch.bincount(probs.argmax(1), minlength=c)
    labelset = (counts > threshold).nonzero().flatten()
    if len(labelset) == 0:
        labelset = torch.arange(c)
    label = probs.argmax(1)
    for _ in range(rounds):
        cent = aff.t() @ f / (1e-8 + aff.sum(0)[:, None])
        dist = 1 - f @ F.normalize(cent[labelset], dim=1).t()
        label = labelset[dist.argmin(1)]
        aff = F.one_hot(label, c).float()
    return label


def head_eval(model: torch.nn.Module) -> None:
    for name, m in model.named_modules():
        if name and (name + ".").startswith(HEAD_PREFIXES):
            m.eval()


@dataclass(frozen=True)
class SHOTParams(AdapterParams):
    lr: float = 1e-2
    weight_decay: float = 1e-3
    lr_f: float = 0.1
    lr_b: float = 1.0
    lr_c: float = 0.0  # frozen classifier
    poly_decay: bool = True
    beta: float = 0.3  # cls_par
    ent_weight: float = 1.0
    div_prior: str = "uniform"  # uniform (compat) | source
    source_prior: float = 0.0  # A/H rate of the source; 0 = the source run's training rate
    interval_steps: int = 0  # pseudo-label refresh; 0 = once per pass over the target windows
    threshold: int = 0
    cls_warmup: bool = False  # VisDA: no CE during the first interval


@ADAPTERS.register("shot")
class SHOT(Adapter):
    name = "shot"
    Params = SHOTParams

    def fit(self, model, target: AdaptationData, source=None):
        p = self.params
        if p.div_prior not in ("uniform", "source"):
            raise ValueError(f"personalize.shot.div_prior: {p.div_prior!r} is not uniform or source")
        opt = create_optimizer(model, p)
        it = batches(target.windows, p.batch_size, target.seed)
        interval = p.interval_steps or max(1, -(-len(target.windows) // p.batch_size))
        offsets = target.offsets
        prior = None
        if p.div_prior == "source":
            pi = p.source_prior or target.source_prior
            prior = torch.tensor([1 - pi, pi], device=target.device)
        state: Dict[str, torch.Tensor] = {}
        accs = []

        def refresh(i):
            if i % interval == 0:
                a = collect(model, target)
                state["labels"] = shot_pseudo_labels(a["feats"], a["probs"], p.threshold)
                accs.append({"step": i, "changed_vs_argmax": float((state["labels"] != a["probs"].argmax(1))
                                                                   .float().mean())})
                model.train()
            head_eval(model)

        def step_loss(i):
            raw = next(it)
            b = to_device(raw, target.device)
            out = model(b["inputs"], mask=b["mask"])
            probs = torch.softmax(out["logits"][b["mask"]].float(), -1)
            loss = p.ent_weight * im_loss(probs, prior)
            if p.beta > 0 and not (p.cls_warmup and i < interval):
                pseudo = state["labels"][frame_rows(raw, offsets)].to(target.device)
                loss = loss + p.beta * masked_ce(out["logits"], pseudo, b["mask"])
            return loss

        self.history["loss"] = run_steps(model, opt, p, step_loss, "shot", on_step=refresh, selector=target.selector)
        self.history["refresh"] = accs
        return model
