"""Options -> model: the one adapter from the trainer's options to ``create_model`` keywords,
pretrained-weight loading, and facts about a built model that inference needs.

It reads the options by attribute (duck-typed) so it sits below the trainer in the layering.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch

from bah.core.config import ConfigError
from bah.models import create_model


def model_kwargs(o) -> Dict[str, Any]:
    kw: Dict[str, Any] = dict(window_length=o.window_length, modal_dim=o.modal_dim, num_heads=o.num_heads)
    if not o.compat or o.model_name.upper() == "LFAN":  # the original fixed kernel 5 for CAN/JMT/MT
        kw["kernel_size"] = o.tcn_kernel_size
    backbone = {"input_size": o.face_crop}
    if o.load_path:
        weights = Path(o.load_path) / "res50_ir_0.887.pth"
        if not weights.exists():
            raise ConfigError(f"--load_path: {weights} not found")
        backbone["weights"] = str(weights)
    if o.visual_backbone_path:  # a BAH-finetuned fer_models backbone: mini_config.yml + model.pt
        import yaml
        from bah.models import BACKBONES

        folder = Path(o.visual_backbone_path)
        mini, weights = folder / "mini_config.yml", folder / "model.pt"
        if not mini.is_file() or not weights.is_file():
            raise ConfigError(f"--visual_backbone_path: {folder} must hold mini_config.yml and model.pt")
        mc = yaml.safe_load(mini.read_text(encoding="utf-8")) or {}
        arch = str(mc.get("model_type", "")).lower()
        if arch not in BACKBONES:
            raise ConfigError(f"--visual_backbone_path: {mini}: model_type {arch!r} is not one of {BACKBONES.list()}")
        kw["backbone"] = arch
        backbone.update(reduce_dim=mc.get("reduce_dim", 512), weights=str(weights))
    kw["backbone_kwargs"] = backbone
    return kw


def load_pretrained(model: torch.nn.Module, o) -> None:
    """--use_pretrained_w: start LFAN from a previous run's weights, head re-initialised (as the original)."""
    import yaml
    from bah.models import load_original_state_dict

    folder = Path(o.load_path or ".") / o.pretrained_subpath
    cfg_file, weights = folder / "config.yml", folder / "model.pt"
    if not weights.is_file() or not cfg_file.is_file():
        raise ConfigError(f"--use_pretrained_w: {folder} must hold model.pt and config.yml")
    cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    if str(cfg.get("model_name", "")).upper() != o.model_name.upper() or cfg.get("modality") != o.modality:
        raise ConfigError(f"--use_pretrained_w: {cfg_file} was trained as {cfg.get('model_name')} on "
                           f"{cfg.get('modality')}, not {o.model_name} on {o.modality}")
    load_original_state_dict(model, weights)
    model.regressor.reset_parameters()


def build_model(name: str, modalities, compat: bool, **kw: Any) -> torch.nn.Module:
    return create_model(name, modalities=modalities, compat=compat, **kw)


def fixed_length_of(model: torch.nn.Module) -> Optional[int]:
    """Models that can only process exactly ``window_length`` frames get windowed inference."""
    compat = getattr(model, "compat", None)
    if getattr(compat, "lfan_fixed_window", False) and hasattr(model, "window_length"):
        return int(model.window_length)
    return getattr(model, "fixed_length", None)
