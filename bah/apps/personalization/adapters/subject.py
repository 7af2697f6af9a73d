"""Subject-based UDA (Zeeshan et al., FG 2024): source CE + MMD + ACPL target pseudo-labels.

ACPL (augmented confident pseudo-labels) on cached features: the second view is a feature-level
augmentation from ``VIEWS`` (Gaussian noise, or one modality zeroed), since a horizontal flip has
no meaning for cached features. A frame is kept when the mean of the two views' top-class
probabilities exceeds tau; its label comes from the more confident view. tau starts at 0.90 and
drops by 0.02 at every refresh. ``balance`` (A/H-specific, default on) also keeps, per predicted
class, the top ``balance_fraction`` most confident frames, so the minority A/H class is not
filtered out by a global threshold.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch

from bah.core.registry import Registry

from .base import ADAPTERS, AdaptationData, Adapter, batches, collect, create_optimizer, frame_rows, masked_ce, run_steps
from .basic import recompute_bn_stats
from .mmd import MMDParams, domain_step

log = logging.getLogger(__name__)

VIEWS: Registry = Registry("ACPL view")


@VIEWS.register("noise")
def noise_view(sigma: float) -> Callable:
    def view(inputs: Dict[str, torch.Tensor], g: torch.Generator) -> Dict[str, torch.Tensor]:
        return {m: (x + sigma * torch.randn(x.shape, generator=g).to(x.device)) if x.dim() == 3 else x
                for m, x in inputs.items()}
    return view


@VIEWS.register("modality_dropout")
def modality_dropout_view(sigma: float) -> Callable:
    def view(inputs: Dict[str, torch.Tensor], g: torch.Generator) -> Dict[str, torch.Tensor]:
        names = sorted(inputs)
        drop = names[int(torch.randint(len(names), (1,), generator=g))]
        return {m: torch.zeros_like(x) if m == drop else x for m, x in inputs.items()}
    return view


def tau_schedule(tau0: float, step: float, refresh: int) -> float:
    """Threshold at the ``refresh``-th regeneration (0 = the first)."""
    return tau0 - step * refresh


def acpl_select(p1: torch.Tensor, p2: torch.Tensor, tau: float, balance: bool = False,
                balance_fraction: float = 0.5) -> Dict[str, torch.Tensor]:
    """Pseudo-labels from two views' probabilities (N, C): ``labels`` (-1 = not kept), ``keep``,
    ``confidence`` (mean of the views' top probabilities)."""
    c1, l1 = p1.max(-1)
    c2, l2 = p2.max(-1)
    conf = (c1 + c2) / 2
    label = torch.where(c1 >= c2, l1, l2)
    keep = conf > tau
    if balance:
        for c in label.unique():
            idx = (label == c).nonzero().flatten()
            k = max(1, int(round(balance_fraction * len(idx))))
            top = idx[conf[idx].argsort(descending=True)[:k]]
            keep[top] = True
    return {"labels": torch.where(keep, label, torch.full_like(label, -1)), "keep": keep, "confidence": conf}


@dataclass(frozen=True)
class SubjectParams(MMDParams):
    tau0: float = 0.90
    tau_step: float = 0.02
    stage1_fraction: float = 0.5  # stage 1 (source CE + MMD) for this share of the steps, then ACPL
    refresh_steps: int = 25  # regenerate pseudo-labels every N steps of stage 2 (the code: every 20 epochs)
    view: str = "noise"
    view_sigma: float = 0.3
    balance: bool = True
    balance_fraction: float = 0.5
    pseudo_weight: float = 1.0
    shrink_pool: bool = False  # the public code's quirk: each refresh re-filters the previous pool


@ADAPTERS.register("subject_uda")
class SubjectUDA(Adapter):
    name = "subject_uda"
    Params = SubjectParams
    needs_source = True

    def fit(self, model, target: AdaptationData, source=None):
        if source is None:
            raise ValueError("subject_uda needs the source training data")
        p = self.params
        view = VIEWS.get(p.view)(p.view_sigma)
        opt = create_optimizer(model, p)
        tgt, src = batches(target.windows, p.batch_size, target.seed), batches(source, p.batch_size, target.seed + 1)
        g = torch.Generator().manual_seed(target.seed)
        offsets = target.offsets
        state: Dict[str, torch.Tensor] = {}
        kept: List[Dict[str, int]] = []

        start = int(round(p.stage1_fraction * p.steps))

        def refresh(i: int) -> None:
            if i < start or (i - start) % max(p.refresh_steps, 1):
                return
            r = (i - start) // max(p.refresh_steps, 1)
            a = collect(model, target)
            b = collect(model, target, view, seed=target.seed * 7919 + r)
            sel = acpl_select(a["probs"], b["probs"], tau_schedule(p.tau0, p.tau_step, r), p.balance,
                              p.balance_fraction)
            labels = sel["labels"]
            if p.shrink_pool and "labels" in state:
                labels = torch.where(state["labels"] >= 0, labels, torch.full_like(labels, -1))
            state["labels"] = labels
            kept.append({"step": i, "tau": tau_schedule(p.tau0, p.tau_step, r),
                         "kept_0": int((labels == 0).sum()), "kept_1": int((labels == 1).sum())})
            log.debug("ACPL refresh %d: %s", r, kept[-1])
            model.train()

        def step_loss(i):
            tb = next(tgt)
            ce, d, to, t = domain_step(model, next(src), tb, target.device, p, g)
            if "labels" not in state:  # stage 1
                return ce + p.lam * d
            pseudo = state["labels"][frame_rows(tb, offsets)].to(target.device)
            return ce + p.lam * d + p.pseudo_weight * masked_ce(to["logits"], pseudo, t["mask"])

        self.history["loss"] = run_steps(model, opt, p, step_loss, "subject_uda", on_step=refresh, selector=target.selector)
        self.history["pseudo_labels"] = kept
        if p.target_bn:
            recompute_bn_stats(model, target.windows, target.device, p.batch_size)
        return model
