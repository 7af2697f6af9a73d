"""What every bah frame model shares: registries, modality parsing, compat switches,
per-modality TCN branches, the face backbone, masked BatchNorm and the input contract.

Contract (docs/architecture.md, "Models"): ``model(inputs, mask=None) -> dict`` with
``inputs`` a dict modality -> tensor ((B,L,D) features, also the original (B,1,L,D);
(B,L,3,H,W) faces for ``video``), ``mask`` (B,L) bool with True = real frame. The output
holds ``logits`` (B,L,num_classes), ``feat_fused`` (B,L,D) and ``feat_<modality>`` (B,L,C).
Models never mutate ``inputs``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from bah.core.registry import Registry

from .tcn import TemporalConvNet

MODELS: Registry = Registry("model")
BACKBONES: Registry = Registry("backbone")

#: Per-frame input widths of the modalities the original knows, used when a modality is
#: given by name only. ``video`` is faces (its width comes from the backbone).
DEFAULT_DIMS: Dict[str, Optional[int]] = {"video": None, "vision": 512, "vggish": 128, "bert": 768,
                                          "logmel": 64, "egemaps": 88, "mfcc": 39, "landmarks": 136}

#: The visual-embedding modality is trained by the same TCN branch as faces, so a model on
#: precomputed embeddings carries the original ``temporal.video`` / ``bn.video`` keys.
BRANCH_ALIASES: Dict[str, str] = {"vision": "video"}

#: TCN widths of the README configuration. LFAN reads ``configs.config['tcn']['channels']``;
#: CAN/JMT/MT read ``tcn_settings``. Modalities not listed get the ``*`` entry.
LFAN_CHANNELS: Dict[str, List[int]] = {"video": [256, 256, 128, 128], "vggish": [64, 64, 32, 32],
                                       "bert": [256, 256, 128, 128], "*": [64, 64, 32, 32]}
TCN_SETTINGS: Dict[str, List[int]] = {"video": [256, 256, 128, 128, 128], "vggish": [128, 128, 64, 64],
                                      "bert": [256, 256, 128, 128], "*": [128, 128, 64, 64]}


@dataclass(frozen=True)
class ModelCompat:
    """Model-side compat switches (original-training.md §9.2). True = original behaviour."""

    backbone_train_mode: bool = False   # frozen backbone BN/Dropout follow model.train()
    jmt_fusion_seq_first: bool = False  # JMT/MT final stage attends over L*B, streams as batch
    jmt_use_text: bool = True           # JMT/MT fusion reads the modalities after the first two
    tcn_xavier_noop: bool = False       # default Conv init instead of Xavier on weight_v
    tcn_dropout_original: bool = False  # LFAN 0.1, CAN/JMT/MT 0.2 regardless of ``dropout``
    logits_fp16: bool = False           # logits stay in the autocast dtype
    lfan_fixed_window: bool = False     # LFAN accepts exactly ``window_length`` frames
    ignore_mask: bool = False           # no masking: padded frames enter attention and BN stats

    @classmethod
    def original(cls) -> "ModelCompat":
        return cls(backbone_train_mode=True, jmt_fusion_seq_first=True, jmt_use_text=False,
                   tcn_xavier_noop=True, tcn_dropout_original=True, logits_fp16=True,
                   lfan_fixed_window=True, ignore_mask=True)

    @classmethod
    def fixed(cls) -> "ModelCompat":
        return cls()

    @classmethod
    def resolve(cls, compat: Union[bool, "ModelCompat", Mapping[str, bool], None]) -> "ModelCompat":
        if isinstance(compat, ModelCompat):
            return compat
        if isinstance(compat, Mapping):
            names = {f.name for f in fields(cls)}
            bad = sorted(set(compat) - names)
            if bad:
                raise KeyError(f"unknown model compat switch(es) {bad}; known: {sorted(names)}")
            return cls(**{k: bool(v) for k, v in compat.items()})
        return cls.original() if compat else cls.fixed()

    @property
    def is_original(self) -> bool:
        return self == ModelCompat.original()


@dataclass(frozen=True)
class Modality:
    name: str            # key in the inputs dict
    dim: Optional[int]   # per-frame feature width; None = face images through the backbone
    branch: str          # name of the TCN / BN branch (checkpoint keys)

    @property
    def is_faces(self) -> bool:
        return self.dim is None


ModalitySpec = Union[str, Tuple[str, Optional[int]], Modality]


def parse_modalities(modalities: Iterable[ModalitySpec]) -> List[Modality]:
    """Normalise ``[("video", None), ("vggish", 128), "bert", ...]`` into ``Modality`` rows."""
    out: List[Modality] = []
    if isinstance(modalities, (str, bytes)):
        raise TypeError("modalities must be a list of (name, dim) pairs, not a string")
    for spec in modalities:
        if isinstance(spec, Modality):
            out.append(spec)
            continue
        if isinstance(spec, str):
            if spec not in DEFAULT_DIMS:
                raise ValueError(f"modality {spec!r} has no default width; pass ({spec!r}, dim)")
            name, dim = spec, DEFAULT_DIMS[spec]
        else:
            name, dim = spec
        if dim is None and name != "video":
            raise ValueError(f"modality {name!r}: only 'video' may be face images (dim None); give its width")
        if name == "video" and dim is not None:
            raise ValueError("modality 'video' means face images (dim None); use ('vision', D) for "
                             "precomputed visual embeddings")
        if dim is not None and int(dim) <= 0:
            raise ValueError(f"modality {name!r}: width must be positive, got {dim}")
        out.append(Modality(name, None if dim is None else int(dim), BRANCH_ALIASES.get(name, name)))
    if not out:
        raise ValueError("a model needs at least one modality")
    branches = [m.branch for m in out]
    dup = sorted({b for b in branches if branches.count(b) > 1})
    if dup:
        raise ValueError(f"modalities {[m.name for m in out]} share TCN branch(es) {dup} "
                         f"('video' and 'vision' are the same visual branch; give only one)")
    return out


def channels_for(m: Modality, table: Mapping[str, Sequence[int]],
                 override: Optional[Mapping[str, Sequence[int]]]) -> List[int]:
    if override:
        for key in (m.name, m.branch):
            if key in override:
                return [int(c) for c in override[key]]
    return list(table.get(m.branch, table["*"]))


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over (B, C, L) whose training statistics use only the real frames.

    Same parameters and buffers as ``nn.BatchNorm1d`` (checkpoint keys unchanged). With
    ``mask`` None, or in eval mode, it is exactly ``nn.BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:  # type: ignore[override]
        # No host-side test of the mask (``bool(mask.all())`` would make the host wait for the
        # device at every call): callers pass None when there is no padding (engine.model_mask);
        # a mask without padding gives the plain statistics up to float rounding.
        if mask is None or not self.training or x.dim() != 3:
            return super().forward(x)
        m = mask[:, None, :].to(torch.float32)
        n = m.sum().clamp_min(1)  # at least one real frame per window; the clamp only guards 0/0
        xf = x.float()
        mean = (xf * m).sum(dim=(0, 2)) / n
        var = (((xf - mean[None, :, None]) ** 2) * m).sum(dim=(0, 2)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - mom).add_(mom * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - mom).add_(mom * (var * n / (n - 1).clamp_min(1)).to(self.running_var.dtype))
        y = (xf - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None].float() + self.bias[None, :, None].float()
        return y.to(x.dtype)


class FrameModel(nn.Module):
    """Base of every model: builds the per-modality pieces; subclasses order the groups.

    Subclasses call ``_build_temporal``, ``_build_bn`` and ``_build_spatial`` in the order
    their original registered ``temporal`` / ``bn`` / ``spatial``, so ``state_dict()`` keys
    come out in the original order.
    """

    model_name = "base"
    original_dropout = 0.2
    channel_table: Mapping[str, Sequence[int]] = TCN_SETTINGS

    def __init__(self, modalities: Iterable[ModalitySpec], compat: Union[bool, ModelCompat, Mapping[str, bool]] = False,
                 tcn_channels: Optional[Mapping[str, Sequence[int]]] = None, kernel_size: int = 5,
                 dropout: Optional[float] = None, num_classes: int = 2, backbone: str = "ir50",
                 backbone_kwargs: Optional[Mapping[str, Any]] = None, freeze_backbone: bool = True,
                 backbone_chunk: int = 1024):
        super().__init__()
        self.modalities = parse_modalities(modalities)
        self.compat = ModelCompat.resolve(compat)
        self.num_classes = int(num_classes)
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.kernel_size = int(kernel_size)
        if self.compat.tcn_dropout_original:
            self.dropout = self.original_dropout
        else:
            self.dropout = 0.1 if dropout is None else float(dropout)
        self.tcn_channels = {m.branch: channels_for(m, self.channel_table, tcn_channels) for m in self.modalities}
        self.backbone_name = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.freeze_backbone = bool(freeze_backbone)
        self.backbone_chunk = int(backbone_chunk)
        visual: Optional[nn.Module] = None
        if any(m.is_faces for m in self.modalities):
            visual = BACKBONES.create(backbone, **self.backbone_kwargs)
            if self.freeze_backbone:
                for p in visual.parameters():
                    p.requires_grad_(False)
        # Kept out of _modules here: it is registered once, as ``spatial.visual``, in the
        # slot where the subclass's original registered it.
        object.__setattr__(self, "_visual", visual)

    # -- construction helpers -------------------------------------------------------------
    def input_dim(self, m: Modality) -> int:
        return int(self._visual.out_dim) if m.is_faces else int(m.dim)  # type: ignore[union-attr]

    def out_channels(self, m: Modality) -> int:
        return self.tcn_channels[m.branch][-1]

    def _build_temporal(self) -> None:
        self.temporal = nn.ModuleDict({
            m.branch: TemporalConvNet(self.input_dim(m), self.tcn_channels[m.branch], self.kernel_size,
                                      self.dropout, xavier=not self.compat.tcn_xavier_noop)
            for m in self.modalities})

    def _build_bn(self) -> None:
        self.bn = nn.ModuleDict({m.branch: MaskedBatchNorm1d(self.out_channels(m)) for m in self.modalities})

    def _build_spatial(self) -> None:
        self.spatial = nn.ModuleDict()
        if self._visual is not None:
            self.spatial["visual"] = self._visual

    # -- mode -------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "FrameModel":
        super().train(mode)
        # A frozen backbone stays in eval mode unless the original quirk is asked for.
        if self._visual is not None and self.freeze_backbone and not self.compat.backbone_train_mode:
            self._visual.eval()
        return self

    # -- forward helpers --------------------------------------------------------------------
    def _mask(self, mask: Optional[torch.Tensor], batch: int, length: int) -> Optional[torch.Tensor]:
        if mask is None or self.compat.ignore_mask:
            return None
        if mask.shape != (batch, length):
            raise ValueError(f"{self.model_name}: mask has shape {tuple(mask.shape)}, expected ({batch}, {length})")
        return mask.to(torch.bool)

    def _encode_faces(self, faces: torch.Tensor, name: str) -> torch.Tensor:
        if faces.dim() != 5 or faces.shape[2] != 3:
            raise ValueError(f"{self.model_name}: modality {name!r} expects faces (B, L, 3, H, W), "
                             f"got shape {tuple(faces.shape)}")
        b, length = faces.shape[:2]
        flat = faces.reshape(b * length, *faces.shape[2:])
        if not torch.is_floating_point(flat):
            raise ValueError(f"{self.model_name}: faces must be float tensors in [-1, 1], got {flat.dtype}")
        vis = self._visual
        assert vis is not None
        frozen_eval = self.freeze_backbone and not vis.training
        if frozen_eval:
            # Frames are independent in eval mode: chunking bounds memory on long videos.
            with torch.no_grad():
                out = torch.cat([vis(c) for c in flat.split(self.backbone_chunk)], 0)
        else:
            out = vis(flat)
        return out.reshape(b, length, -1)

    def _features(self, inputs: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], int, int]:
        """Per modality a (B, L, D) tensor (faces through the backbone). Inputs untouched."""
        if not isinstance(inputs, Mapping):
            raise TypeError(f"{self.model_name}: inputs must be a dict modality -> tensor, got {type(inputs).__name__}")
        missing = [m.name for m in self.modalities if m.name not in inputs]
        if missing:
            raise KeyError(f"{self.model_name}: inputs lack modality {missing}; got {sorted(inputs)}")
        feats: Dict[str, torch.Tensor] = {}
        shape: Optional[Tuple[int, int]] = None
        for m in self.modalities:
            x = inputs[m.name]
            if m.is_faces:
                x = self._encode_faces(x, m.name)
            else:
                if x.dim() == 4 and x.shape[1] == 1:  # the original (B, 1, L, D)
                    x = x[:, 0]
                if x.dim() != 3 or x.shape[-1] != m.dim:
                    raise ValueError(f"{self.model_name}: modality {m.name!r} expects (B, L, {m.dim}), "
                                     f"got shape {tuple(x.shape)}")
                if not torch.is_floating_point(x):
                    x = x.float()
            if shape is None:
                shape = (x.shape[0], x.shape[1])
            elif (x.shape[0], x.shape[1]) != shape:
                raise ValueError(f"{self.model_name}: modality {m.name!r} has (B, L) = {tuple(x.shape[:2])}, "
                                 f"others have {shape}")
            feats[m.name] = x
        assert shape is not None
        return feats, shape[0], shape[1]

    def _temporal(self, feats: Mapping[str, torch.Tensor], mask: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """TCN + BN per modality; returns (B, C, L) tensors keyed by modality name."""
        out = {}
        for m in self.modalities:
            x = feats[m.name].transpose(1, 2)
            x = self.temporal[m.branch](x, mask)
            out[m.name] = self.bn[m.branch](x, mask)
        return out

    def _finish(self, logits: torch.Tensor, fused: torch.Tensor, per_mod: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if not self.compat.logits_fp16:
            logits = logits.float()
        out = {"logits": logits, "feat_fused": fused}
        for name, x in per_mod.items():
            out[f"feat_{name}"] = x
        return out


def head_forward(fc1: nn.Linear, bn1: MaskedBatchNorm1d, fc2: nn.Linear, x: torch.Tensor,
                 mask: Optional[torch.Tensor]) -> torch.Tensor:
    """The CAN/JMT/MT head: Linear -> BN over channels -> LeakyReLU -> Linear, on (B, L, D)."""
    c = fc1(x).transpose(1, 2)
    c = bn1(c, mask).transpose(1, 2)
    return fc2(F.leaky_relu(c))


def safe_key_padding(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``key_padding_mask`` (True = ignore) from a frame mask; a sample with no real frame
    keeps all its keys so its softmax stays finite (its outputs are padding anyway)."""
    if mask is None:
        return None  # no padding (engine.model_mask passes None then; no host-side test here, it would sync)
    pad = ~mask
    empty = pad.all(dim=1, keepdim=True)
    return pad & ~empty
