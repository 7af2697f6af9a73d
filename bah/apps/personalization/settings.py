"""The ``personalize`` configuration section.

General settings plus one mapping per registered method (``personalize.shot.beta: 0.3``,
``--set personalize.nrc.k=3``); a method's mapping overrides its ``Params`` defaults (the original
papers' values, see ``defaults.yaml``). Unknown keys fail at parse time with the method named.
"""
from __future__ import annotations

import dataclasses
from dataclasses import field, make_dataclass
from typing import Any, Dict, Mapping, Tuple

from bah.core.config import section

from .adapters import ADAPTERS, make_params
from .protocol import SPLITS

GENERAL = [
    ("source_run", str, ""),  # a bah train run folder (or its best-model/)
    ("methods", Tuple[str, ...], ("source_only",)),
    ("targets", str, "all"),  # all | paper10 | list:ID,... | file:PATH | sample:N:SEED
    ("target_split", str, "holdout"),
    ("eval_videos", int, 3),
    ("min_videos", int, 3),
    ("split_seed", int, 0),  # the target split; adaptation seeds are ``seeds``
    ("seeds", Tuple[int, ...], (0,)),
    ("ddof", int, 1),  # std over targets
    ("select_on_target_labels", bool, False),  # optimistic: every output says so
    ("select_every", int, 25),
    ("device", str, "cpu"),
    ("dataset_path", str, ""),  # default: the source run's dataset_path
    ("split", str, "test"),  # the split holding the target participants
    ("window_length", int, 0),  # adaptation windows; 0 = the source run's
    ("hop_length", int, 0),
]


def _post_init(self) -> None:
    for m in self.methods:
        if m not in ADAPTERS:
            raise ValueError(f"methods: unknown method {m!r}; known: {ADAPTERS.list()}")
    if self.target_split not in SPLITS:
        raise ValueError(f"target_split: {self.target_split!r} is not one of {SPLITS.list()}")
    if not self.seeds:
        raise ValueError("seeds: at least one seed")
    if self.eval_videos < 1 or self.min_videos < 1:
        raise ValueError("eval_videos and min_videos must be >= 1")
    if self.ddof not in (0, 1):
        raise ValueError("ddof must be 0 or 1")
    for name in ADAPTERS.list():
        make_params(ADAPTERS.get(name).Params, getattr(self, name) or {}, f"personalize.{name}")


def method_params(cfg: Any, name: str):
    return make_params(ADAPTERS.get(name).Params, getattr(cfg, name, None) or {}, f"personalize.{name}")


def resolved(cfg: Any) -> Dict[str, Any]:
    """Every setting with each method's full parameter set (what config.yaml records)."""
    out = {f: getattr(cfg, f) for f, _, _ in GENERAL}
    for name in ADAPTERS.list():
        out[name] = dataclasses.asdict(method_params(cfg, name))
    return out


PersonalizeConfig = section("personalize")(make_dataclass(
    "PersonalizeConfig",
    [(n, t, field(default=d)) for n, t, d in GENERAL]
    + [(name, Mapping[str, Any], field(default_factory=dict)) for name in ADAPTERS.list()],
    frozen=True, namespace={"__post_init__": _post_init, "__module__": __name__}))
