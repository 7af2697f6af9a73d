"""Frame-level A/H models: TCN branches, face backbones and the LFAN/CAN/JMT/MT fusions.

``create_model(name, modalities, compat=False, **kw)`` builds any registered model;
``MODELS.list()`` / ``BACKBONES.list()`` feed argparse choices. See docs/models.md.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, Iterable, Mapping, Union

from torch import nn

from .base import (BACKBONES, BRANCH_ALIASES, DEFAULT_DIMS, LFAN_CHANNELS, MODELS, TCN_SETTINGS,
                   FrameModel, MaskedBatchNorm1d, Modality, ModelCompat, parse_modalities)
from .tcn import TemporalBlock, TemporalConvNet, WeightNormConv1d, receptive_field
from .ir50 import IR50, VisualBackbone, build_ir50, load_ir50_weights
from .resnet import RESNETS, ResNetBackbone, load_resnet_weights
from .checkpoint import complete_aliases, load_original_state_dict, read_state_dict
from . import lfan, can, jmt, unimodal  # noqa: F401  (registration)
from .lfan import LFAN
from .can import CAN
from .jmt import JMT, MT
from .unimodal import Unimodal


def _ir50(input_size: int = 40, weights=None, **kw) -> VisualBackbone:
    return build_ir50(input_size=input_size, weights=weights)


BACKBONES.register("ir50", _ir50)


def _resnet_factory(arch: str):
    def build(input_size: int = 112, reduce_dim: int | None = 512, weights=None, **kw) -> ResNetBackbone:
        model = ResNetBackbone(arch, reduce_dim=reduce_dim, input_size=input_size)
        if weights is not None:
            load_resnet_weights(model, weights)
        return model
    return build


for _arch in RESNETS:
    BACKBONES.register(_arch, _resnet_factory(_arch))


def create_model(name: str, modalities: Iterable, compat: Union[bool, ModelCompat, Mapping[str, bool]] = False,
                 **kw: Any) -> FrameModel:
    """Build model ``name`` (see ``MODELS.list()``) for ``modalities`` [(name, dim or None), ...].

    Keywords: ``tcn_channels`` {modality: [widths]}, ``kernel_size`` (5), ``dropout`` (0.1; compat
    uses the original 0.1 LFAN / 0.2 others), ``num_classes`` (2), ``backbone`` ("ir50"),
    ``backbone_kwargs``, ``freeze_backbone`` (True); LFAN: ``window_length`` (696),
    ``num_heads`` (2), ``modal_dim`` (32); CAN: ``fusion_dim`` (128).
    """
    cls = MODELS.get(name.lower())
    # One keyword set serves every model (the trainer passes them all): a model-specific
    # option another model does not have is dropped, anything unknown still raises.
    accepted = set(inspect.signature(cls.__init__).parameters) | set(inspect.signature(FrameModel.__init__).parameters)
    kw = {k: v for k, v in kw.items() if k in accepted or k not in MODEL_SPECIFIC_KWARGS}
    return cls(list(modalities), compat=compat, **kw)


#: Options that only some models read; create_model drops them for the others.
MODEL_SPECIFIC_KWARGS = frozenset({"window_length", "num_heads", "modal_dim", "fusion_dim"})


def count_parameters(model: nn.Module) -> Dict[str, int]:
    params = list(model.parameters())  # deduplicated: aliased TCN convolutions count once
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


def describe(model: nn.Module) -> Dict[str, Any]:
    """Parameter counts overall and per top-level group (``temporal.<m>``, ``spatial``, ...).

    ``summary`` is one line for the trainer's log.
    """
    counts = count_parameters(model)
    groups: Dict[str, int] = {}
    for name, p in model.named_parameters():
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] in ("temporal", "bn", "spatial") else parts[0]
        groups[key] = groups.get(key, 0) + p.numel()
    compat = getattr(model, "compat", None)
    mode = "compat" if isinstance(compat, ModelCompat) and compat.is_original else (
        "fixed" if compat == ModelCompat.fixed() else "custom")
    mods = ",".join(m.name for m in getattr(model, "modalities", []))
    summary = (f"{getattr(model, 'model_name', type(model).__name__)}[{mods}] {mode}: "
               f"{counts['total']:,} params, {counts['trainable']:,} trainable, {counts['frozen']:,} frozen")
    return {**counts, "groups": groups, "mode": mode, "summary": summary}


__all__ = [
    "MODELS", "BACKBONES", "create_model", "describe", "count_parameters", "ModelCompat", "Modality",
    "parse_modalities", "FrameModel", "MaskedBatchNorm1d", "TemporalConvNet", "TemporalBlock",
    "WeightNormConv1d", "receptive_field", "IR50", "VisualBackbone", "build_ir50", "load_ir50_weights",
    "ResNetBackbone", "load_resnet_weights", "load_original_state_dict", "complete_aliases",
    "read_state_dict", "LFAN", "CAN", "JMT", "MT", "Unimodal", "DEFAULT_DIMS", "BRANCH_ALIASES",
    "LFAN_CHANNELS", "TCN_SETTINGS",
]
