"""The one adapter interface, its registry, and what every adapter shares.

``Adapter.fit(model, target, source=None) -> model``: ``target`` is an :class:`AdaptationData`
(target windows whose labels are -1 unless the adapter is the oracle, plus the whole adaptation
videos for banks and clustering); ``source`` is the labelled source-training window dataset,
given only to adapters that declare ``needs_source`` (MMD, subject-based). A source-free adapter
receives ``None``.

Parameter groups follow §2.4 of the spec: "F" = per-modality TCN branches (``temporal.*``,
``bn.*``, ``spatial.*``), "C" = the per-frame head (``fc1/bn1/fc2`` or LFAN's ``regressor``),
"B" = the rest (the fusion). Each group's learning rate is ``lr x lr_<group>``; 0 freezes it.
Every loss is taken over valid (unpadded) frames only.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from bah.core.progress import progress_bar

from bah.train.dataset import collate
from bah.train.engine import to_device
from bah.core.registry import Registry

log = logging.getLogger(__name__)

HEAD_PREFIXES = ("fc1.", "bn1.", "fc2.", "regressor.")
BRANCH_PREFIXES = ("temporal.", "bn.", "spatial.")
GROUPS = ("F", "B", "C")


class AdaptationError(RuntimeError):
    pass


@dataclass(frozen=True)
class AdapterParams:
    """Optimiser and schedule every learned adapter shares (per-method defaults override)."""

    steps: int = 100  # fixed number of adaptation steps: no early stopping
    batch_size: int = 8  # windows per step
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-3
    lr_f: float = 0.1  # multiplier of the TCN branches
    lr_b: float = 1.0  # multiplier of the fusion
    lr_c: float = 1.0  # multiplier of the head (0 = frozen)
    poly_decay: bool = False  # SHOT/NRC schedule lr * (1 + 10 p) ** -0.75


def param_group_of(name: str) -> str:
    if name.startswith(HEAD_PREFIXES):
        return "C"
    if name.startswith(BRANCH_PREFIXES):
        return "F"
    return "B"


def param_groups(model: nn.Module) -> Dict[str, List[Tuple[str, nn.Parameter]]]:
    out: Dict[str, List[Tuple[str, nn.Parameter]]] = {g: [] for g in GROUPS}
    for name, p in model.named_parameters():
        if p.requires_grad:
            out[param_group_of(name)].append((name, p))
    return out


def create_optimizer(model: nn.Module, p: AdapterParams) -> torch.optim.Optimizer:
    groups = []
    mults = {"F": p.lr_f, "B": p.lr_b, "C": p.lr_c}
    for g, named in param_groups(model).items():
        if mults[g] <= 0:
            for _, prm in named:
                prm.requires_grad_(False)
            continue
        if named:
            groups.append({"params": [prm for _, prm in named], "lr": p.lr * mults[g], "base_lr": p.lr * mults[g],
                           "name": g})
    if not groups:
        raise AdaptationError("no trainable parameters left (every group has a zero learning-rate multiplier)")
    if p.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=p.lr, momentum=p.momentum, nesterov=p.nesterov and p.momentum > 0,
                               weight_decay=p.weight_decay)
    if p.optimizer == "adam":
        return torch.optim.Adam(groups, lr=p.lr, weight_decay=p.weight_decay)
    raise AdaptationError(f"unknown optimizer {p.optimizer!r}: use sgd or adam")


def poly_lr(optimizer: torch.optim.Optimizer, progress: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * (1 + 10 * progress) ** -0.75


@dataclass
class AdaptationData:
    """One target's adaptation part. ``windows`` items carry target -1 for non-oracle adapters."""

    windows: Dataset  # training windows of the adaptation videos
    videos: Dataset  # the same videos, whole (bank / clustering passes), same video order
    lengths: Sequence[int]
    device: torch.device
    seed: int = 0
    source_prior: float = 0.2  # A/H frame rate of the source training split (metadata, not target labels)
    selector: Optional[Any] = None  # --select-on-target-labels only

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def n_frames(self) -> int:
        return int(np.sum(self.lengths))


def batches(dataset: Dataset, batch_size: int, seed: int) -> Iterator[Dict[str, Any]]:
    """Endless shuffled window batches (a seeded reshuffle per pass)."""
    epoch = 0
    while True:
        g = torch.Generator().manual_seed(seed * 1009 + epoch)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=0,
                            generator=g, drop_last=len(dataset) > batch_size)
        for b in loader:
            yield b
        epoch += 1


def forward(model: nn.Module, batch: Mapping[str, Any], device: torch.device,
            inputs: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    b = batch if inputs is not None else to_device(batch, device)
    return model(inputs if inputs is not None else b["inputs"], mask=b["mask"])


def frame_rows(batch: Mapping[str, Any], offsets: np.ndarray) -> torch.Tensor:
    """Bank row of every frame of a window batch (padding included; select with the mask)."""
    vi = batch["video_idx"].cpu().numpy()
    fi = batch["frame_idx"].cpu().numpy()
    return torch.from_numpy(offsets[vi][:, None] + np.maximum(fi, 0))


@torch.no_grad()
def collect(model: nn.Module, data: AdaptationData,
            view: Optional[Callable[[Dict[str, torch.Tensor], torch.Generator], Dict[str, torch.Tensor]]] = None,
            seed: int = 0) -> Dict[str, torch.Tensor]:
    """One eval pass over the whole adaptation videos: per valid frame (rows in bank order)
    the fused feature, the class probabilities, video index and frame index."""
    was = model.training
    model.eval()
    n = data.n_frames
    feats: Optional[torch.Tensor] = None
    probs = torch.zeros(n, 2)
    vid = torch.zeros(n, dtype=torch.long)
    fr = torch.zeros(n, dtype=torch.long)
    offsets = data.offsets
    g = torch.Generator(device="cpu").manual_seed(seed)
    loader = DataLoader(data.videos, batch_size=1, shuffle=False, collate_fn=collate, num_workers=0)
    for batch in loader:
        b = to_device(batch, data.device)
        inputs = view(b["inputs"], g) if view is not None else b["inputs"]
        out = model(inputs, mask=b["mask"])
        m = b["mask"][0]
        f = out["feat_fused"][0][m].float().cpu()
        if feats is None:
            feats = torch.zeros(n, f.shape[-1])
        rows = frame_rows(batch, offsets)[0][m.cpu()]
        feats[rows] = f
        probs[rows] = torch.softmax(out["logits"][0][m].float(), -1).cpu()
        vid[rows] = int(batch["video_idx"][0])
        fr[rows] = batch["frame_idx"][0][m.cpu()]
    model.train(was)
    assert feats is not None
    return {"feats": feats, "probs": probs, "video": vid, "frame": fr}


def run_steps(model: nn.Module, optimizer: torch.optim.Optimizer, p: AdapterParams,
              step_loss: Callable[[int], torch.Tensor], desc: str,
              on_step: Optional[Callable[[int], None]] = None, selector: Optional[Any] = None) -> List[float]:
    """The adaptation loop: fixed steps, optional poly decay, finite-loss check. ``selector``
    (only with --select-on-target-labels: optimistic) scores snapshots on labelled target data
    and restores the best one at the end."""
    losses = []
    model.train()
    bar = progress_bar(range(p.steps), desc=desc, unit="step", leave=False, disable=None, mininterval=1.0)
    for i in bar:
        if on_step is not None:
            on_step(i)
        if p.poly_decay:
            poly_lr(optimizer, i / max(p.steps, 1))
        optimizer.zero_grad(set_to_none=True)
        loss = step_loss(i)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {loss.item()} at step {i}")
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if i % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if selector is not None and ((i + 1) % selector.every == 0 or i + 1 == p.steps):
            selector.snapshot(model, i + 1)
            model.train()
    if selector is not None:
        selector.restore(model)
    model.eval()
    return losses


def masked_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over valid frames whose target is a class (targets < 0 are ignored)."""
    keep = mask & (target >= 0)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits[keep].float(), target[keep])


class Adapter:
    """Base of every adaptation method (registered in ``ADAPTERS``)."""

    name = "base"
    Params = AdapterParams
    needs_source = False
    uses_target_labels = False  # only the oracle
    learned = True  # False: nothing is optimised (source-only, AdaBN, pp_norm)

    def __init__(self, params: Optional[AdapterParams] = None):
        self.params = params if params is not None else self.Params()
        self.history: Dict[str, Any] = {}

    def fit(self, model: nn.Module, target: AdaptationData, source: Optional[Dataset] = None) -> nn.Module:
        raise NotImplementedError


ADAPTERS: Registry = Registry("adaptation method", Adapter)


def make_params(cls: type, values: Optional[Mapping[str, Any]], where: str) -> AdapterParams:
    """Build an adapter's parameters from a (partial) mapping, naming unknown keys."""
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    defaults = cls()
    kw = {}
    for k, v in values.items():
        ref = getattr(defaults, k)
        try:
            kw[k] = type(ref)(v) if not isinstance(ref, bool) else (v if isinstance(v, bool) else
                                                                    str(v).lower() in ("1", "true", "yes", "on"))
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{k}: cannot use {v!r} as {type(ref).__name__}") from None
    return dataclasses.replace(defaults, **kw)


def create_adapter(name: str, values: Optional[Mapping[str, Any]] = None) -> Adapter:
    cls = ADAPTERS.get(name)
    return cls(make_params(cls.Params, values, f"personalize.{name}"))
