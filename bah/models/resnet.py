"""torchvision ResNet face backbones (the original ``--visual_backbone_path`` route).

The original built them through ``torch.hub.load('pytorch/vision', ...)`` (network access);
here torchvision builds them locally with no weights downloaded. The optional dimension
reduction head is the original ``_Dim_Reduc``: ReLU -> BN1d -> Linear -> ReLU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

# name -> (torchvision builder, feature width before the classifier)
RESNETS = {
    "resnet18": ("resnet18", 512),
    "resnet34": ("resnet34", 512),
    "resnet50": ("resnet50", 2048),
    "resnet101": ("resnet101", 2048),
    "resnet152": ("resnet152", 2048),
}


class DimReduction(nn.Sequential):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(nn.ReLU(), nn.BatchNorm1d(in_dim), nn.Linear(in_dim, out_dim), nn.ReLU())


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier, optionally reduced to ``reduce_dim``.

    ``forward`` maps (N, 3, S, S) faces to (N, out_dim). The paper's ResNet rows used
    112x112 faces, hence the default ``input_size``; any size >= 32 works.
    """

    def __init__(self, arch: str = "resnet18", reduce_dim: Optional[int] = 512, input_size: int = 112):
        super().__init__()
        import torchvision.models as tvm

        if arch not in RESNETS:
            raise KeyError(f"unknown ResNet {arch!r}; known: {', '.join(sorted(RESNETS))}")
        builder, width = RESNETS[arch]
        net = getattr(tvm, builder)(weights=None)
        net.fc = nn.Identity()
        self.arch = arch
        self.backbone = net
        self.input_size = int(input_size)
        self.dim_reduce = DimReduction(width, reduce_dim) if reduce_dim else None
        self.out_dim = int(reduce_dim) if reduce_dim else width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.arch} expects (N, 3, H, W) faces, got shape {tuple(x.shape)}")
        x = self.backbone(x)
        return self.dim_reduce(x) if self.dim_reduce is not None else x


def load_resnet_weights(model: ResNetBackbone, path_or_sd: Union[str, Path, Mapping[str, Any]]) -> ResNetBackbone:
    """Load weights saved from a ``ResNetBackbone`` (keys ``backbone.*`` / ``dim_reduce.*``).

    A plain torchvision state dict (``conv1.weight``, ..., ``fc.*``) is accepted too: it goes
    into ``backbone`` with the classifier dropped. ``module.`` prefixes are stripped.
    """
    from .checkpoint import read_state_dict, strip_prefix

    sd, source = read_state_dict(path_or_sd)
    sd = strip_prefix(sd, "module.")
    try:
        if any(k.startswith("backbone.") for k in sd):
            model.load_state_dict(sd, strict=True)
        else:
            model.backbone.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")}, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(f"{source}: does not fit {model.arch}: {exc}") from None
    return model
