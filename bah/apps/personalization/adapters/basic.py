"""Source-only, oracle, AdaBN and per-participant standardisation (pp_norm)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bah.train.dataset import collate
from bah.train.engine import to_device

from .base import ADAPTERS, Adapter, AdapterParams, batches, create_optimizer, forward, masked_ce, run_steps


@dataclass(frozen=True)
class NoParams(AdapterParams):
    steps: int = 0


@ADAPTERS.register("source_only")
class SourceOnly(Adapter):
    """The source model as it is: the reference every delta is taken against."""

    name = "source_only"
    Params = NoParams
    learned = False

    def fit(self, model, target, source=None):
        return model


@dataclass(frozen=True)
class OracleParams(AdapterParams):
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_f: float = 1.0


@ADAPTERS.register("oracle")
class Oracle(Adapter):
    """Supervised fine-tuning on the target's LABELLED adaptation part: an upper reference."""

    name = "oracle"
    Params = OracleParams
    uses_target_labels = True

    def fit(self, model, target, source=None):
        p = self.params
        opt = create_optimizer(model, p)
        it = batches(target.windows, p.batch_size, target.seed)

        def step_loss(i):
            b = to_device(next(it), target.device)
            return masked_ce(forward(model, b, target.device, b["inputs"])["logits"], b["target"], b["mask"])

        self.history["loss"] = run_steps(model, opt, p, step_loss, "oracle", selector=target.selector)
        return model


def bn_layers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, windows: Dataset, device: torch.device, batch_size: int = 8) -> int:
    """AdaBN: replace every BatchNorm's running statistics by those of ``windows`` (valid frames
    only: the models' MaskedBatchNorm1d skip padding), with dropout off. Returns the layer count."""
    layers = bn_layers(model)
    saved = [(m.momentum, m.training) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the whole pass
        m.train()
    for batch in DataLoader(windows, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=0):
        b = to_device(batch, device)
        model(b["inputs"], mask=b["mask"])
    for m, (mom, _tr) in zip(layers, saved):
        m.momentum = mom
    model.eval()
    return len(layers)


@ADAPTERS.register("adabn")
class AdaBN(Adapter):
    """Source-free baseline: BatchNorm statistics recomputed on the target adaptation frames."""

    name = "adabn"
    Params = NoParams
    learned = False

    def fit(self, model, target, source=None):
        self.history["bn_layers"] = recompute_bn_stats(model, target.windows, target.device, 8)
        return model


class InputStandardiser(nn.Module):
    """Wraps a model: z-scores each feature modality with one participant's statistics before the model."""

    def __init__(self, model: nn.Module, stats: Mapping[str, "tuple[torch.Tensor, torch.Tensor]"]):
        super().__init__()
        self.model = model
        # windowed inference (compat LFAN) is decided from these, as for the bare model
        self.compat = getattr(model, "compat", None)
        if hasattr(model, "window_length"):
            self.window_length = model.window_length
        self.names = sorted(stats)
        for m, (mu, sd) in stats.items():
            self.register_buffer(f"mean_{m}", mu)
            self.register_buffer(f"std_{m}", sd)

    def forward(self, inputs, mask=None):
        x = dict(inputs)
        for m in self.names:
            x[m] = (x[m] - getattr(self, f"mean_{m}")) / getattr(self, f"std_{m}")
        return self.model(x, mask=mask)


@dataclass(frozen=True)
class PPNormParams(AdapterParams):
    steps: int = 0
    std_floor: float = 1e-3


@ADAPTERS.register("pp_norm")
class PPNorm(Adapter):
    """Per-participant standardisation: each feature modality z-scored with the target adaptation
    part's statistics. Inputs are already standardised with the source (train-split) statistics,
    so z-scoring re-colours the target to the source's mean 0 / std 1."""

    name = "pp_norm"
    Params = PPNormParams
    learned = False

    def fit(self, model, target, source=None):
        sums: Dict[str, torch.Tensor] = {}
        sq: Dict[str, torch.Tensor] = {}
        n = 0
        for batch in DataLoader(target.videos, batch_size=1, shuffle=False, collate_fn=collate, num_workers=0):
            m = batch["mask"][0]
            for name, x in batch["inputs"].items():
                if name == "video" or x.dim() != 3:
                    continue  # faces are not standardised
                v = x[0][m].double()
                sums[name] = sums.get(name, 0) + v.sum(0)
                sq[name] = sq.get(name, 0) + (v ** 2).sum(0)
            n += int(m.sum())
        if n < 2:
            raise ValueError("pp_norm: fewer than two valid target frames")
        stats = {}
        for name in sums:
            mu = sums[name] / n
            var = (sq[name] / n - mu ** 2).clamp_min(0) * n / (n - 1)
            stats[name] = (mu.float().to(target.device), var.sqrt().clamp_min(self.params.std_floor).float().to(target.device))
        self.history["modalities"] = sorted(stats)
        return InputStandardiser(model, stats).eval()
