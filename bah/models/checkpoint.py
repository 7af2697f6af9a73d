"""Loading the original BAH checkpoints (``best-model/model.pt``) into bah models.

Handles the three ways an original state dict differs from a plain ``load_state_dict``:
``module.`` prefixes (DataParallel), the aliased TCN keys (``conv1`` = ``net.0`` and
``conv2`` = ``net.4``: either name alone is enough, both must agree when both are
present), and the ``spatial.visual.*`` IR-50 entries, which a model built on precomputed
visual embeddings (the ``vision`` path) simply does not have.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np
import torch
from torch import nn

_ALIASES = ((".conv1.", ".net.0."), (".conv2.", ".net.4."))
_TCN_KEY = re.compile(r"\.network\.\d+\.(conv1|conv2|net\.0|net\.4)\.")
VISUAL_PREFIX = "spatial.visual."


def read_state_dict(path_or_sd: Union[str, Path, Mapping[str, Any]]) -> Tuple[Dict[str, torch.Tensor], str]:
    """Return (state dict of tensors, a description of the source for error messages).

    Accepts a path to a ``torch.save`` file (a bare state dict, or a dict holding one under
    ``state_dict`` / ``model``), a ``.npz`` of arrays, or a mapping.
    """
    if isinstance(path_or_sd, Mapping):
        sd, source = dict(path_or_sd), "<state dict>"
    else:
        path = Path(path_or_sd)
        source = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                sd = {k: z[k] for k in z.files}
        else:
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - name the file whatever torch raised
                raise RuntimeError(f"{path}: cannot read checkpoint: {exc}") from None
        if isinstance(sd, Mapping):
            for key in ("state_dict", "model"):
                if key in sd and isinstance(sd[key], Mapping):
                    sd = dict(sd[key])
                    break
        if not isinstance(sd, Mapping):
            raise RuntimeError(f"{path}: expected a state dict, found {type(sd).__name__}")
    out = {}
    for k, v in sd.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.ascontiguousarray(v))
        if not isinstance(v, torch.Tensor):
            raise RuntimeError(f"{source}: entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k] = v
    return out, source


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


def _alias_of(key: str) -> str | None:
    if not _TCN_KEY.search(key):
        return None
    for a, b in _ALIASES:
        if a in key:
            return key.replace(a, b, 1)
        if b in key:
            return key.replace(b, a, 1)
    return None


def complete_aliases(sd: Mapping[str, torch.Tensor], source: str = "<state dict>") -> Dict[str, torch.Tensor]:
    """Add the missing twin of every aliased TCN key; refuse twins that disagree."""
    out = dict(sd)
    for key, value in sd.items():
        twin = _alias_of(key)
        if twin is None:
            continue
        if twin in out:
            if out[twin].shape != value.shape or not torch.equal(out[twin], value):
                raise RuntimeError(f"{source}: aliased TCN keys {key!r} and {twin!r} hold different tensors")
        else:
            out[twin] = value
    return out


def load_original_state_dict(model: nn.Module, path_or_sd: Union[str, Path, Mapping[str, Any]],
                             strict: bool = True) -> Tuple[List[str], List[str]]:
    """Load an original BAH checkpoint (or any bah state dict) into ``model``.

    Returns (missing, unexpected) like ``load_state_dict`` (both empty when strict).
    Errors name the file and the offending keys.
    """
    sd, source = read_state_dict(path_or_sd)
    sd = strip_prefix(sd, "module.")
    sd = complete_aliases(sd, source)
    own = model.state_dict()
    has_visual = any(k.startswith(VISUAL_PREFIX) for k in own)
    if not has_visual:
        # vision path: the frozen IR-50 is replaced by precomputed embeddings.
        sd = {k: v for k, v in sd.items() if not k.startswith(VISUAL_PREFIX)}
    elif not any(k.startswith(VISUAL_PREFIX) for k in sd) and strict:
        raise RuntimeError(f"{source}: has no {VISUAL_PREFIX}* (IR-50) entries but the model runs faces "
                           f"through a backbone; build it on the 'vision' modality or load the backbone "
                           f"weights separately with strict=False")
    # Some exports store the BN counters as 1-element vectors instead of 0-d scalars.
    sd = {k: (v.reshape(()) if k in own and own[k].dim() == 0 and v.numel() == 1 else v) for k, v in sd.items()}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
           for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad or (strict and (missing or unexpected)):
        lines = [f"{source}: checkpoint does not fit {type(model).__name__}"]
        if bad:
            lines.append("shape mismatch: " + "; ".join(bad[:10]) + (" ..." if len(bad) > 10 else ""))
        if missing:
            lines.append(f"missing ({len(missing)}): " + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
        if unexpected:
            lines.append(f"unexpected ({len(unexpected)}): " + ", ".join(unexpected[:10])
                         + (" ..." if len(unexpected) > 10 else ""))
        raise RuntimeError("\n  ".join(lines))
    model.load_state_dict(OrderedDict((k, v) for k, v in sd.items() if k in own), strict=False)
    return missing, unexpected


_TCN_CONV = re.compile(r"^temporal\.([^.]+)\.network\.(\d+)\.conv1\.weight(?:_v)?$")


def tcn_widths_of(sd: Mapping[str, Any]) -> Dict[str, List[int]]:
    """{branch: TCN channel widths} read from a state dict's shapes (``temporal.<branch>.network.<i>.conv1``).

    The original keeps its widths in code (``configs.py``), not in the run: a checkpoint trained
    with other widths can only be rebuilt from its own shapes."""
    levels: Dict[str, Dict[int, int]] = {}
    for key, value in sd.items():
        m = _TCN_CONV.match(key)
        if m:
            levels.setdefault(m.group(1), {})[int(m.group(2))] = int(value.shape[0])
    return {b: [lv[i] for i in sorted(lv)] for b, lv in levels.items()}
