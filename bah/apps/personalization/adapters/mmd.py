"""UDA with MMD (DAN/DDC family, the FG-2024 ``TransferNet``): source CE + lambda * MMD^2 on fused features.

Unlike the public call site, the MMD term stays in the graph (it is a loss, not a logged float).
"""
from __future__ import annotations

from dataclasses import dataclass
import torch

from bah.train.engine import to_device

from .base import ADAPTERS, AdaptationData, Adapter, AdapterParams, batches, create_optimizer, masked_ce, run_steps
from .basic import recompute_bn_stats


def gaussian_kernels(x: torch.Tensor, y: torch.Tensor, kernel_mul: float = 2.0, kernel_num: int = 5) -> torch.Tensor:
    """Sum of ``kernel_num`` Gaussian kernels over the pooled set [x; y]; the base bandwidth is the
    mean off-diagonal squared distance / kernel_mul ** (kernel_num // 2) (not back-propagated)."""
    total = torch.cat([x, y], 0).float()
    n = total.shape[0]
    d2 = torch.cdist(total, total).pow(2)
    bw = d2.detach().sum() / max(n * n - n, 1)
    bw = bw.clamp_min(1e-12) / (kernel_mul ** (kernel_num // 2))
    return sum(torch.exp(-d2 / (bw * kernel_mul ** i)) for i in range(kernel_num))


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel_mul: float = 2.0, kernel_num: int = 5) -> torch.Tensor:
    """Biased multi-kernel MMD^2: mean(K_xx) + mean(K_yy) - 2 mean(K_xy)."""
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError("mmd2: both sets need at least one sample")
    k = gaussian_kernels(x, y, kernel_mul, kernel_num)
    n = x.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def sample_rows(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    if x.shape[0] <= k:
        return x
    return x[torch.randperm(x.shape[0], generator=g)[:k].to(x.device)]


@dataclass(frozen=True)
class MMDParams(AdapterParams):
    optimizer: str = "adam"  # the FG code's SGD lr 1e-4 does not move in a fixed budget of steps
    lr: float = 1e-3
    weight_decay: float = 5e-4
    lr_f: float = 1.0
    lr_b: float = 1.0
    lr_c: float = 1.0
    lam: float = 1.0  # weight of MMD^2 (the FG code's 1)
    kernel_mul: float = 2.0
    kernel_num: int = 5
    max_frames: int = 256  # valid frames per domain per step (bounds the O(n^2) kernel)
    target_bn: bool = True  # after adapting, BatchNorm statistics from the target frames


def domain_step(model, src_b, tgt_b, device, p, g):
    """Source CE and MMD^2 between the fused features of the valid frames of both batches."""
    s = to_device(src_b, device)
    t = to_device(tgt_b, device)
    so = model(s["inputs"], mask=s["mask"])
    to = model(t["inputs"], mask=t["mask"])
    fs, ft = so["feat_fused"][s["mask"]], to["feat_fused"][t["mask"]]
    k = min(p.max_frames, fs.shape[0], ft.shape[0])
    d = mmd2(sample_rows(fs, k, g), sample_rows(ft, k, g), p.kernel_mul, p.kernel_num)
    return masked_ce(so["logits"], s["target"], s["mask"]), d, to, t


@ADAPTERS.register("mmd")
class MMD(Adapter):
    name = "mmd"
    Params = MMDParams
    needs_source = True

    def fit(self, model, target: AdaptationData, source=None):
        if source is None:
            raise ValueError("mmd needs the source training data")
        p = self.params
        opt = create_optimizer(model, p)
        tgt, src = batches(target.windows, p.batch_size, target.seed), batches(source, p.batch_size, target.seed + 1)
        g = torch.Generator().manual_seed(target.seed)
        trace = []

        def step_loss(i):
            ce, d, _, _ = domain_step(model, next(src), next(tgt), target.device, p, g)
            trace.append(float(d.detach()))
            return ce + p.lam * d

        self.history["loss"] = run_steps(model, opt, p, step_loss, "mmd", selector=target.selector)
        self.history["mmd"] = trace
        if p.target_bn:
            recompute_bn_stats(model, target.windows, target.device, p.batch_size)
        return model
