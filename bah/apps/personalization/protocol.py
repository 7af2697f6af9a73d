"""The personalisation protocol (§3.1): target selection, eligibility and whole-video target splits.

A target is one test-split participant. Its videos are ordered by question number; the split
never cuts a video (adjacent frames leak). ``holdout``: ``eval_videos`` videos for evaluation,
chosen by a per-participant seeded search so that both parts hold A/H and non-A/H frames, the
rest for adaptation. ``kfold``: leave one video out, every video evaluated once (predictions
pooled). ``transductive``: adapt and evaluate on all videos (the TTA convention; reported as such).
Every exclusion carries a reason.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bah.data.ids import parse_video_id
from bah.core.registry import Registry

# The CLIP-AUTT 10-target-subject BAH protocol (v2 test participants, 7 videos each).
PAPER10 = ("82711", "82687", "82585", "82592", "82598", "82632", "82681", "82683", "82708", "82714")

SPLITS: Registry = Registry("target split")


class ProtocolError(ValueError):
    pass


@dataclass
class TargetPlan:
    pid: str
    videos: List[str]
    folds: List[Tuple[List[str], List[str]]] = field(default_factory=list)  # (adaptation, evaluation)
    excluded: Optional[str] = None

    @property
    def adaptation(self) -> List[str]:
        return sorted({v for a, _ in self.folds for v in a})

    @property
    def evaluation(self) -> List[str]:
        return sorted({v for _, e in self.folds for v in e})


def group_by_participant(video_ids: Sequence[str]) -> Dict[str, List[str]]:
    """pid -> video ids ordered by question number (then id)."""
    out: Dict[str, List[str]] = {}
    for v in video_ids:
        out.setdefault(parse_video_id(v).pid, []).append(v)
    for pid, vs in out.items():
        vs.sort(key=lambda v: (parse_video_id(v).question or 0, v))
    return out


def select_targets(spec: str, available: Sequence[str], split_name: str = "test") -> List[str]:
    """``all`` | ``paper10`` | ``list:ID,ID`` | ``file:PATH`` (one id a line, # comments) | ``sample:N:SEED``.
    Ids missing from the loaded split are refused with their names."""
    avail = sorted(set(available))
    spec = spec.strip()
    if spec == "all":
        return avail
    if spec == "paper10":
        wanted = list(PAPER10)
    elif spec.startswith("list:"):
        wanted = [x.strip() for x in spec[5:].split(",") if x.strip()]
    elif spec.startswith("file:"):
        path = Path(spec[5:])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ProtocolError(f"--targets {spec}: cannot read {path} ({exc})") from None
        wanted = [ln.split("#", 1)[0].strip() for ln in lines]
        wanted = [w for w in wanted if w]
    elif spec.startswith("sample:"):
        parts = spec.split(":")
        try:
            n, seed = int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise ProtocolError(f"--targets {spec!r}: expected sample:N:SEED") from None
        if not 1 <= n <= len(avail):
            raise ProtocolError(f"--targets {spec}: N must be in [1, {len(avail)}] ({len(avail)} participants)")
        return sorted(np.random.RandomState(seed).choice(avail, n, replace=False).tolist())
    else:
        raise ProtocolError(f"--targets {spec!r}: use all, paper10, list:ID,..., file:PATH or sample:N:SEED")
    if not wanted:
        raise ProtocolError(f"--targets {spec}: no participant id given")
    missing = [w for w in wanted if w not in set(avail)]
    if missing:
        raise ProtocolError(f"--targets {spec}: participant(s) {missing} not in the {split_name} split "
                            f"({len(avail)} participants, e.g. {avail[:5]})")
    return list(dict.fromkeys(wanted))


def _both_classes(videos: Sequence[str], counts: Mapping[str, Tuple[int, int]]) -> bool:
    pos = sum(counts[v][0] for v in videos)
    neg = sum(counts[v][1] for v in videos)
    return pos > 0 and neg > 0


def _seed_for(seed: int, pid: str) -> int:
    return int(hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()[:8], 16)


@SPLITS.register("holdout")
def holdout(pid: str, videos: List[str], counts, eval_videos: int, seed: int) -> TargetPlan:
    plan = TargetPlan(pid, list(videos))
    if len(videos) <= eval_videos:
        plan.excluded = f"{len(videos)} videos: holdout needs more than --eval-videos {eval_videos}"
        return plan
    combos = list(itertools.combinations(range(len(videos)), eval_videos))
    for ci in np.random.RandomState(_seed_for(seed, pid)).permutation(len(combos)):
        ev = [videos[i] for i in combos[ci]]
        ad = [v for v in videos if v not in ev]
        if _both_classes(ev, counts) and _both_classes(ad, counts):
            plan.folds = [(ad, ev)]
            return plan
    plan.excluded = (f"no choice of {eval_videos} evaluation videos leaves A/H and non-A/H frames in both the "
                     f"adaptation and the evaluation parts")
    return plan


@SPLITS.register("kfold")
def kfold(pid: str, videos: List[str], counts, eval_videos: int, seed: int) -> TargetPlan:
    plan = TargetPlan(pid, list(videos))
    if not _both_classes(videos, counts):
        plan.excluded = "no A/H frame or no non-A/H frame in the pooled evaluation part"
        return plan
    folds = [([w for w in videos if w != v], [v]) for v in videos]
    bad = [e[0] for a, e in folds if not _both_classes(a, counts)]
    if bad:
        plan.excluded = f"leaving out {bad[0]} leaves an adaptation part without both classes"
        return plan
    plan.folds = folds
    return plan


@SPLITS.register("transductive")
def transductive(pid: str, videos: List[str], counts, eval_videos: int, seed: int) -> TargetPlan:
    plan = TargetPlan(pid, list(videos))
    if not _both_classes(videos, counts):
        plan.excluded = "no A/H frame or no non-A/H frame among the target's frames"
        return plan
    plan.folds = [(list(videos), list(videos))]
    return plan


def plan_targets(pids: Sequence[str], by_pid: Mapping[str, List[str]], counts: Mapping[str, Tuple[int, int]],
                 split: str = "holdout", eval_videos: int = 3, min_videos: int = 3, seed: int = 0) -> List[TargetPlan]:
    """One plan per requested participant; ineligible ones carry ``excluded`` (never an exception)."""
    make: Callable = SPLITS.get(split)
    plans = []
    for pid in pids:
        vids = list(by_pid[pid])
        if len(vids) < min_videos:
            plans.append(TargetPlan(pid, vids, excluded=f"{len(vids)} videos, fewer than {min_videos}"))
            continue
        plans.append(make(pid, vids, counts, eval_videos, seed))
    return plans
