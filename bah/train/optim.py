"""Optimisers and learning-rate schedulers, one registry each.

``optimizer_kwargs(opts)`` / ``scheduler_kwargs(opts)`` turn the parsed options into plain
dicts, so ``create_optimizer(model, **kw)`` and ``create_scheduler(optimizer, **kw)`` never
see a Namespace. Every scheduler sets the lr of epoch ``e`` from a closed form of ``e`` (or
the plateau state), so resuming only needs ``last_epoch`` and that state.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Optional

import torch

from bah.core.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULERS: Registry = Registry("lr scheduler")


def param_groups(model_or_params: Any, weight_decay: float, decay_norm_bias: bool) -> List[Dict[str, Any]]:
    """Trainable parameters; 1-D tensors (norm weights, biases) get no weight decay unless
    ``decay_norm_bias`` (the original decayed everything)."""
    if isinstance(model_or_params, torch.nn.Module):
        named = [(n, p) for n, p in model_or_params.named_parameters() if p.requires_grad]
    else:
        named = [(str(i), p) for i, p in enumerate(model_or_params) if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    if decay_norm_bias or weight_decay == 0:
        return [{"params": [p for _, p in named], "weight_decay": weight_decay}]
    decay = [p for n, p in named if p.ndim > 1]
    no_decay = [p for n, p in named if p.ndim <= 1]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]


@OPTIMIZERS.register("SGD")
def _sgd(groups, lr, momentum=0.9, dampening=0.0, nesterov=True, **_):
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("--opt__nesterov True needs --opt__momentum > 0 and --opt__dampening 0")
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov)


@OPTIMIZERS.register("ADAM")
def _adam(groups, lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, **_):
    # coupled L2 through the group's weight_decay, as the original's Adam
    return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad)


@OPTIMIZERS.register("ADAMW")
def _adamw(groups, lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, **_):
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad)


def optimizer_kwargs(o: Any) -> Dict[str, Any]:
    return dict(name=o.opt__name_optimizer, lr=o.effective_lr, weight_decay=o.opt__weight_decay,
                momentum=o.opt__momentum, dampening=o.opt__dampening, nesterov=o.opt__nesterov,
                betas=(o.opt__beta1, o.opt__beta2), eps=o.opt__eps_adam, amsgrad=o.opt__amsgrad,
                decay_norm_bias=o.weight_decay_on_norm_bias)


def create_optimizer(model_or_params: Any, name: str = "SGD", lr: float = 1e-3, weight_decay: float = 0.0,
                     decay_norm_bias: bool = False, **kw: Any) -> torch.optim.Optimizer:
    groups = param_groups(model_or_params, weight_decay, decay_norm_bias)
    return OPTIMIZERS.get(name)(groups, lr=lr, **kw)


class EpochScheduler:
    """Base: the lr of epoch ``e`` (0-based, the epoch being trained) is ``base_lr * factor(e)``.

    ``step(metric)`` is called once after each epoch; ``step_update(fraction)`` within an
    epoch for schedulers that move per batch (warm-up)."""

    per_batch = False

    def __init__(self, optimizer: torch.optim.Optimizer, min_lr: float = 0.0, last_epoch: int = -1):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.min_lr = min_lr
        self.last_epoch = max(last_epoch, -1) + 1  # the epoch about to be trained
        self._apply(self.last_epoch)

    def lr_at(self, base: float, epoch: int) -> float:
        raise NotImplementedError

    def _apply(self, epoch: float) -> None:
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, epoch)

    def step(self, metric: Optional[float] = None) -> None:
        self.last_epoch += 1
        self._apply(self.last_epoch)

    def step_update(self, fraction: float) -> None:
        """Position inside the current epoch in [0, 1); only per-batch schedulers use it."""

    def get_last_lr(self) -> List[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._apply(self.last_epoch)


@SCHEDULERS.register("CONSTANT")
class ConstantLR(EpochScheduler):
    """--opt__lr_scheduler False (the original crashed on it)."""

    def lr_at(self, base, epoch):
        return base


@SCHEDULERS.register("STEP")
class StepLR(EpochScheduler):
    def __init__(self, optimizer, step_size=40, gamma=0.1, **kw):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, **_base(kw))

    def lr_at(self, base, epoch):
        return base * self.gamma ** (int(epoch) // self.step_size)


@SCHEDULERS.register("MYSTEP")
class MyStepLR(StepLR):
    """Step decay with a floor (the original's MyStepLR)."""

    def lr_at(self, base, epoch):
        return max(super().lr_at(base, epoch), self.min_lr)


@SCHEDULERS.register("MULTISTEP")
class MultiStepLR(EpochScheduler):
    def __init__(self, optimizer, milestones=(30, 60, 90), gamma=0.1, **kw):
        self.milestones, self.gamma = list(milestones), gamma
        super().__init__(optimizer, **_base(kw))

    def lr_at(self, base, epoch):
        return base * self.gamma ** bisect.bisect_right(self.milestones, int(epoch))


@SCHEDULERS.register("COSINE")
class CosineLR(EpochScheduler):
    """Cosine annealing from the base lr to ``min_lr`` (eta_min) over ``t_max`` epochs."""

    def __init__(self, optimizer, t_max=100, **kw):
        self.t_max = float(t_max)
        super().__init__(optimizer, **_base(kw))

    def lr_at(self, base, epoch):
        return self.min_lr + (base - self.min_lr) * (1 + math.cos(math.pi * epoch / self.t_max)) / 2


@SCHEDULERS.register("MYCOSINE")
class MyCosineLR(EpochScheduler):
    """base * coef * (1 + cos(e pi / max_epochs)), floored at min_lr (the original's e-1 with
    1-based epochs is our 0-based e)."""

    def __init__(self, optimizer, coef=0.5, max_epochs=100, **kw):
        self.coef, self.max_epochs = coef, max_epochs
        super().__init__(optimizer, **_base(kw))

    def lr_at(self, base, epoch):
        return max(base * self.coef * (1 + math.cos(epoch * math.pi / self.max_epochs)), self.min_lr)


@SCHEDULERS.register("PLATEAU")
class PlateauLR(EpochScheduler):
    """Multiply the lr by ``factor`` after ``patience`` epochs without improvement of the
    validation metric passed to ``step``; never below ``min_lr``."""

    def __init__(self, optimizer, mode="MAX", factor=0.5, patience=10, **kw):
        self.mode, self.factor, self.patience = mode.upper(), factor, patience
        self.best: Optional[float] = None
        self.bad_epochs = 0
        self.scale = 1.0
        super().__init__(optimizer, **_base(kw))

    def lr_at(self, base, epoch):
        return max(base * self.scale, self.min_lr)

    def _plateau(self, metric: Optional[float]) -> None:
        if metric is None:
            raise ValueError(f"{type(self).__name__}.step needs the validation metric")
        better = self.best is None or (metric > self.best if self.mode == "MAX" else metric < self.best)
        if better:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.scale *= self.factor
                self.bad_epochs = 0

    def step(self, metric=None):
        self._plateau(metric)
        super().step(metric)


@SCHEDULERS.register("MYWARMUP")
class WarmupPlateauLR(PlateauLR):
    """Linear warm-up per batch over ``warmup_epochs`` (from base/100), then plateau decay."""

    per_batch = True

    def __init__(self, optimizer, warmup_epochs=5, **kw):
        self.warmup_epochs = warmup_epochs
        super().__init__(optimizer, **kw)

    def lr_at(self, base, epoch):
        if epoch < self.warmup_epochs:
            return base * (0.01 + 0.99 * epoch / self.warmup_epochs)
        return super().lr_at(base, epoch)

    def step(self, metric=None):
        if self.last_epoch + 1 <= self.warmup_epochs:  # no plateau decisions during warm-up
            EpochScheduler.step(self, metric)
        else:
            super().step(metric)

    def step_update(self, fraction):
        if self.last_epoch < self.warmup_epochs:
            self._apply(self.last_epoch + fraction)


def _base(kw: Dict[str, Any]) -> Dict[str, Any]:
    return {k: kw[k] for k in ("min_lr", "last_epoch") if k in kw}


def scheduler_kwargs(o: Any) -> Dict[str, Any]:
    name = o.opt__name_lr_scheduler if o.opt__lr_scheduler else "CONSTANT"
    return dict(name=name, step_size=o.opt__step_size, gamma=o.opt__gamma, min_lr=o.opt__min_lr,
                last_epoch=o.opt__last_epoch, milestones=o.opt__milestones, t_max=o.opt__t_max,
                coef=o.opt__coef, max_epochs=o.num_epochs, mode=o.effective_opt_mode, factor=o.opt__factor,
                patience=o.opt__patience, warmup_epochs=o.warmup_epochs)


def create_scheduler(optimizer: torch.optim.Optimizer, name: str = "MYSTEP", **kw: Any) -> EpochScheduler:
    import inspect

    cls = SCHEDULERS.get(name)
    accepted = set()
    for klass in cls.__mro__:
        if "__init__" in klass.__dict__:
            accepted |= set(inspect.signature(klass.__init__).parameters)
    return cls(optimizer, **{k: v for k, v in kw.items() if k in accepted})
