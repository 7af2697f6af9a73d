"""Synthetic planted-shift dataset: per-video feature arrays with a known per-participant shift.

Spec: zero-shot-and-personalisation.md §3.4. No videos are rendered: the generator writes the
trainer's on-disk contract directly (``features/compacted_48/<video id>/<modality>.npy``,
``EXPR_continuous_label.npy``, ``dataset_info.pkl``) plus the release's split files, so
``bah train`` and ``bah personalize`` run on it unchanged.

Roles: ``train`` = source participants (small shift), ``val`` = held-out unshifted participants
(the in-domain reference), ``test`` = target participants carrying the planted shift
(an offset of norm ``target_offset`` in a random direction + ``target_class_offset`` along the
class direction, and a scale ``target_scale``). Labels never change with the shift.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from bah.core.config import section
from bah.core.files import save_npy, write_json, write_text
from bah.core.layout import LABEL_MODALITY, video_dir

log = logging.getLogger(__name__)

LABEL = LABEL_MODALITY


@section("shift")
@dataclass(frozen=True)
class ShiftConfig:
    sources: int = 16  # train-split participants
    references: int = 4  # val-split participants without shift (in-domain reference)
    targets: int = 3  # test-split participants with the planted shift
    videos_per_subject: int = 7
    frames: int = 120
    modalities: Tuple[str, ...] = ("vggish", "bert")
    dim: int = 16
    rho: float = 0.7  # AR(1) coefficient of the frame noise
    signal: float = 1.6  # class signal along one fixed direction during A/H segments
    segments_max: int = 2
    segment_min: int = 20
    segment_max: int = 40
    source_offset_std: float = 0.3
    source_scale: Tuple[float, float] = (0.85, 1.15)
    target_offset: float = 2.5
    target_class_offset: float = 1.2
    target_scale: float = 1.6
    rotate_dims: int = 0  # harder variant: random rotation of this many target dimensions (0 = off)
    seed: int = 0

    def __post_init__(self):
        checks = [
            (self.sources >= 1 and self.targets >= 1, "sources and targets must be >= 1"),
            (self.references >= 0, "references must be >= 0"),
            (self.videos_per_subject >= 1, "videos_per_subject must be >= 1"),
            (self.frames >= self.segment_max + 2, "frames must exceed segment_max + 1"),
            (self.dim >= 2, "dim must be >= 2"),
            (0 <= self.rho < 1, "rho must be in [0, 1)"),
            (1 <= self.segment_min <= self.segment_max, "need 1 <= segment_min <= segment_max"),
            (len(self.modalities) >= 1, "at least one modality"),
            (0 <= self.rotate_dims <= self.dim, "rotate_dims must be in [0, dim]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


@dataclass
class ShiftResult:
    root: Path
    splits: Dict[str, List[str]] = field(default_factory=dict)  # split -> video ids
    participants: Dict[str, str] = field(default_factory=dict)  # pid -> role


def video_id(pid: str, question: int) -> str:
    return f"Videos/{pid}/Visite_1/{pid}_Question_{question}_2024-01-01_10-00-00_Video.mp4"


def _labels(rng: np.random.RandomState, cfg: ShiftConfig) -> np.ndarray:
    lab = np.zeros(cfg.frames, np.float32)
    for _ in range(rng.randint(0, cfg.segments_max + 1)):
        n = rng.randint(cfg.segment_min, cfg.segment_max + 1)
        s = rng.randint(0, cfg.frames - n + 1)
        lab[s:s + n] = 1
    return lab


def _ar1(rng: np.random.RandomState, n: int, d: int, rho: float) -> np.ndarray:
    eps = rng.randn(n, d) * np.sqrt(1 - rho ** 2)
    x = np.empty((n, d))
    x[0] = rng.randn(d)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + eps[t]
    return x


def _unit(rng: np.random.RandomState, d: int) -> np.ndarray:
    v = rng.randn(d)
    return v / np.linalg.norm(v)


def generate_planted_shift(root: Path, cfg: ShiftConfig = ShiftConfig()) -> ShiftResult:
    """Write the planted-shift dataset under ``root`` (the trainer's ``dataset_path``)."""
    from bah.stages.index import write_dataset_info

    root = Path(root)
    rng = np.random.RandomState(cfg.seed)
    class_dir = {m: _unit(rng, cfg.dim) for m in cfg.modalities}
    roles = ([("train", "source")] * cfg.sources + [("val", "reference")] * cfg.references
             + [("test", "target")] * cfg.targets)
    result = ShiftResult(root)
    info: Dict[str, Dict[str, Any]] = {s: {"trial": [], "length": [], "data_folder": "compacted_48", "partition": s}
                                       for s in ("train", "val", "test")}
    lines: Dict[str, List[str]] = {s: [] for s in info}
    facts: Dict[str, Any] = {"config": _plain(cfg), "participants": {}}
    for k, (split, role) in enumerate(roles):
        pid = str(10000 + k)
        result.participants[pid] = role
        prng = np.random.RandomState(rng.randint(2 ** 31))
        shift = {}
        for m in cfg.modalities:
            if role == "target":
                off = cfg.target_offset * _unit(prng, cfg.dim) + cfg.target_class_offset * class_dir[m]
                scale = cfg.target_scale
                rot = np.eye(cfg.dim)
                if cfg.rotate_dims:
                    q, _ = np.linalg.qr(prng.randn(cfg.rotate_dims, cfg.rotate_dims))
                    rot[:cfg.rotate_dims, :cfg.rotate_dims] = q
            elif role == "source":
                off = prng.randn(cfg.dim) * cfg.source_offset_std
                scale = prng.uniform(*cfg.source_scale)
                rot = np.eye(cfg.dim)
            else:
                off, scale, rot = np.zeros(cfg.dim), 1.0, np.eye(cfg.dim)
            shift[m] = (off, float(scale), rot)
        facts["participants"][pid] = {"role": role, "split": split,
                                      "scale": {m: s[1] for m, s in shift.items()},
                                      "offset_norm": {m: float(np.linalg.norm(s[0])) for m, s in shift.items()}}
        for q in range(1, cfg.videos_per_subject + 1):
            vid = video_id(pid, q)
            folder = video_dir(root, vid)
            lab = _labels(prng, cfg)
            for m in cfg.modalities:
                x = _ar1(prng, cfg.frames, cfg.dim, cfg.rho) + cfg.signal * lab[:, None] * class_dir[m][None]
                off, scale, rot = shift[m]
                save_npy(folder / f"{m}.npy", ((scale * x) @ rot.T + off).astype(np.float32))
            save_npy(folder / f"{LABEL}.npy", lab)
            info[split]["trial"].append(vid)
            info[split]["length"].append(cfg.frames)
            lines[split].append(f"{vid},{int(lab.max() > 0)},synthetic planted-shift features")
            result.splits.setdefault(split, []).append(vid)
    write_dataset_info(root, info)
    for s, ls in lines.items():
        write_text(root / "split" / f"{s}.txt", "".join(line + "\n" for line in ls))
    write_json(root / "planted_shift.json", facts)
    return result


def _plain(cfg: ShiftConfig) -> Dict[str, Any]:
    from dataclasses import asdict

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def run_planted_shift(args: argparse.Namespace) -> int:
    """``bah synth --planted-shift``: the synth flags map onto the ``shift`` section."""
    from bah.core.config import config_from_args

    ov: Dict[str, Optional[Any]] = {"shift.seed": getattr(args, "seed", None),
                                    "shift.videos_per_subject": getattr(args, "videos_per_subject", None)}
    if getattr(args, "subjects", None):
        ov["shift.sources"] = args.subjects
    cfg = config_from_args(args, sections=["shift"], overrides=ov)
    res = generate_planted_shift(cfg.out, cfg["shift"])
    roles: Mapping[str, str] = res.participants
    log.info("planted-shift features written to %s: %d source, %d reference, %d target participants",
             cfg.out, sum(r == "source" for r in roles.values()), sum(r == "reference" for r in roles.values()),
             sum(r == "target" for r in roles.values()))
    return 0
