"""The deterministic plan of a synthetic dataset: who, which videos, which labels, which split.

Everything random here comes from one ``numpy.random.Generator`` seeded by the user's seed,
so the same seed gives the same plan (and therefore the same file names, labels and splits).
Per-video randomness (speech, motion) is seeded from ``VideoPlan.seed``, derived here, so a
video renders the same whatever worker draws it and whatever else is generated.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from bah.synth.settings import SynthConfig

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.60, 0.15, 0.25)
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f3", "en-gb+f2", "en-us+m3")
PORTRAITS = ("astronaut", "grace_hopper")
ANNOTATORS = ("MGG", "SB", "OZ")
DESKTOP_SUFFIXES = ("-DESKTOP-NQ55E0P", "-DESKTOP-ABC1234")


@dataclass(frozen=True)
class Look:
    """How one synthetic participant looks and sounds (fixed across their videos)."""

    portrait: str
    mirror: bool
    gains: Tuple[float, float, float]
    gamma: float
    face_frac: float  # face width / frame height
    centre: Tuple[float, float]  # face centre as fractions of (width, height)
    roll: float  # degrees
    background: int  # seed of the background picture
    voice: str
    rate: int  # espeak words per minute
    pitch: int  # espeak pitch 0..99


@dataclass(frozen=True)
class Participant:
    pid: str
    split: str
    look: Look
    meta: Dict[str, object]


# Frame times of a variable-frame-rate video stay this far from every A/H edge, so the
# millisecond-rounded times of the annotation select exactly the frames planted as A/H.
EDGE_CLEARANCE_S = 0.0015


@dataclass(frozen=True)
class VideoPlan:
    video_id: str
    pid: str
    question: int
    split: str
    label: int
    n_frames: int  # frames on the nominal grid i/fps (the whole duration); a VFR video holds fewer
    fps: float
    intervals: Tuple[Tuple[int, int], ...]  # A/H as inclusive frame intervals of the nominal grid
    seed: int
    annotator: str
    certainty: Tuple[int, ...]
    last_end_none: bool  # the Whisper quirk: last chunk ends with None
    look: Look
    vfr: bool = False  # dropped frames and timestamp jitter (frame_times)
    rotation: int = 0  # degrees of the display matrix; frames are stored turned the other way
    silence: float = 0.0  # seconds of silence at the end (no speech, no A/H)
    frame_annotation: bool = True  # False: the annotation entry has intervals only
    overrun: bool = False  # transcript timestamps start before 0 and end after the video

    @property
    def stem(self) -> str:
        return self.video_id.rsplit("/", 1)[1][: -len(".mp4")]

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def seconds_intervals(self) -> List[Tuple[float, float]]:
        """A/H as half-open [start, end) seconds: what the speech, the face cue and the labels follow."""
        return [(s / self.fps, (e + 1) / self.fps) for s, e in self.intervals]

    def frame_times(self) -> Tuple[np.ndarray, np.ndarray]:
        """(nominal grid index, presentation time in seconds) of every frame the video holds.

        A constant-frame-rate video holds the whole grid at i/fps. A VFR one drops about 10 %
        of the frames in bursts of 1-3 and jitters the others by up to 0.3 frame, as browser
        recordings do; no time falls within EDGE_CLEARANCE_S of an A/H edge.
        """
        idx = np.arange(self.n_frames)
        if not self.vfr:
            return idx, idx / self.fps
        rng = np.random.default_rng([self.seed, 3])
        keep = np.ones(self.n_frames, dtype=bool)
        for start in rng.integers(1, max(2, self.n_frames), size=max(1, self.n_frames // 20)):
            keep[start:start + int(rng.integers(1, 4))] = False
        keep[0] = True
        idx = idx[keep]
        t = (idx + rng.uniform(-0.3, 0.3, idx.size)) / self.fps
        t[0] = 0.0
        for edge in (x for pair in self.seconds_intervals() for x in pair):
            near = np.abs(t - edge) < EDGE_CLEARANCE_S
            t[near] = edge + np.where(idx[near] / self.fps >= edge, 1, -1) * EDGE_CLEARANCE_S
        return idx, t

    def frame_labels(self, times: Optional[np.ndarray] = None) -> np.ndarray:
        """0/1 per frame the video holds: 1 where the frame's time lies in an A/H interval."""
        t = self.frame_times()[1] if times is None else times
        lab = np.zeros(t.size, dtype=np.int64)
        for a, b in self.seconds_intervals():
            lab[(t >= a) & (t < b)] = 1
        return lab


@dataclass(frozen=True)
class DatasetPlan:
    config: SynthConfig
    participants: Tuple[Participant, ...]
    videos: Tuple[VideoPlan, ...] = field(default_factory=tuple)

    def split_videos(self, split: str) -> List[VideoPlan]:
        return [v for v in self.videos if v.split == split]


def make_plan(cfg: SynthConfig) -> DatasetPlan:
    rng = np.random.default_rng([cfg.seed, 0x5A17])
    pids = _participant_ids(rng, cfg.subjects)
    labels = _labels(rng, cfg.subjects, cfg.videos_per_subject, cfg.positive_fraction)
    splits = _assign_splits(rng, labels)
    participants = []
    videos: List[VideoPlan] = []
    name_counter = 0
    hard = _hard_cases(cfg, labels)
    for p, pid in enumerate(pids):
        look = _look(rng)
        meta = _meta(rng)
        participants.append(Participant(pid=pid, split=splits[p], look=look, meta=meta))
        questions = _questions(rng, cfg.videos_per_subject)
        visit = _dt.datetime(2024, 6, 1, 9, 0, 0) + _dt.timedelta(
            days=int(rng.integers(0, 270)), hours=int(rng.integers(0, 9)), minutes=int(rng.integers(0, 60))
        )
        for k, q in enumerate(questions):
            stamp = visit + _dt.timedelta(minutes=3 * k, seconds=int(rng.integers(0, 60)))
            name = _file_name(rng, pid, q, stamp, name_counter)
            name_counter += 1
            label = labels[p][k]
            case = hard[len(videos)]
            fps, n_frames = case["fps"], case["n_frames"]
            speech_frames = n_frames - int(round(case["silence"] * fps))
            intervals = _intervals(rng, speech_frames, fps) if label else ()
            videos.append(
                VideoPlan(
                    video_id=f"Videos/{pid}/Visite_1/{name}",
                    pid=pid,
                    question=q,
                    split=splits[p],
                    label=label,
                    n_frames=n_frames,
                    fps=fps,
                    intervals=intervals,
                    seed=int(rng.integers(0, 2**31 - 1)),
                    annotator=ANNOTATORS[int(rng.integers(0, len(ANNOTATORS)))],
                    certainty=tuple(int(rng.integers(2, 4)) for _ in intervals),
                    last_end_none=bool(rng.random() < 0.3) and not case["overrun"],
                    look=dataclasses.replace(look, face_frac=case["face_frac"]) if case["face_frac"] else look,
                    vfr=case["vfr"], rotation=case["rotation"], silence=case["silence"],
                    frame_annotation=not (case["no_frame_annotation"] and label), overrun=case["overrun"],
                )
            )
    return DatasetPlan(config=cfg, participants=tuple(participants), videos=tuple(videos))


def _fps(value: float) -> float:
    """29.97 (and 23.976, 59.94) are the NTSC rates 30000/1001 (24000/1001, 60000/1001)."""
    for ntsc in (24000 / 1001, 30000 / 1001, 60000 / 1001):
        if abs(value - ntsc) < 0.005:
            return ntsc
    return float(value)


def _hard_cases(cfg: SynthConfig, labels: List[List[int]]) -> List[Dict[str, object]]:
    """Per video (plan order): fps, nominal frame count and which hard cases it carries.

    Drawn from their own generator, so a configuration without hard cases plans exactly the
    videos it always did.
    """
    flat = [lab for per in labels for lab in per]
    n = len(flat)
    rng = np.random.default_rng([cfg.seed, 0x4A2D])
    fps = [_fps(cfg.fps_mix[int(rng.integers(0, len(cfg.fps_mix)))]) if cfg.fps_mix else float(cfg.fps)
           for _ in range(n)]
    seconds = np.full(n, float(cfg.seconds))
    if cfg.seconds_jitter:
        seconds *= rng.uniform(1 - cfg.seconds_jitter, 1 + cfg.seconds_jitter, n)
        seconds = np.maximum(seconds, min(3.0, cfg.seconds))
    order = rng.permutation(n)
    long_ids = set(order[:min(cfg.long_videos, n)].tolist())
    if long_ids:
        rest = [i for i in range(n) if i not in long_ids]
        seconds[list(long_ids)] = cfg.long_seconds
        if rest:  # the others shrink so that the total duration stays n * seconds
            room = n * cfg.seconds - cfg.long_seconds * len(long_ids)
            scale = room / seconds[rest].sum() if room > 0 else 0.0
            seconds[rest] = np.maximum(seconds[rest] * scale, min(3.0, cfg.seconds))

    def pick(count: int, allowed) -> set:
        pool = [i for i in rng.permutation(n).tolist() if allowed(i)]
        return set(pool[:count])

    positives = [i for i in range(n) if flat[i]]
    rotated = pick(cfg.rotated, lambda i: True)
    silent = pick(cfg.silences, lambda i: seconds[i] >= 6.0)
    no_frames = pick(cfg.no_frame_annotation, lambda i: i in positives)
    overrun = pick(cfg.overruns, lambda i: True)
    vfr = rng.random(n) < cfg.vfr
    small = rng.random(n) < cfg.small_faces
    small_frac = rng.uniform(0.17, 0.24, n)  # face height 80-115 px in a 480 px frame
    out = []
    for i in range(n):
        silence = round(max(3.0, 0.35 * seconds[i]), 3) if i in silent else 0.0
        out.append({"fps": fps[i], "n_frames": max(2, int(round(seconds[i] * fps[i]))), "vfr": bool(vfr[i]),
                    "face_frac": float(small_frac[i]) if small[i] else None,
                    "rotation": 90 if i in rotated else 0, "silence": silence,
                    "no_frame_annotation": i in no_frames, "overrun": i in overrun})
    return out


def _participant_ids(rng: np.random.Generator, n: int) -> List[str]:
    # Five-digit ids in the range the release uses (82xxx-83xxx), unique.
    ids = rng.choice(np.arange(82000, 84000), size=n, replace=False) if n <= 2000 else np.arange(10000, 10000 + n)
    return [str(int(i)) for i in ids]


def _labels(rng: np.random.Generator, subjects: int, vps: int, frac: float) -> List[List[int]]:
    # Mix the classes inside each participant when they have >= 2 videos so that every
    # participant-disjoint split can hold both classes.
    total = subjects * vps
    n_pos = int(round(frac * total))
    flat = np.zeros(total, dtype=int)
    if vps >= 2 and subjects <= n_pos <= total - subjects:
        # One positive and one negative per participant first, then the rest at random.
        per = [[1, 0] for _ in range(subjects)]
        used_pos = subjects
        rest = [(p, k) for p in range(subjects) for k in range(2, vps)]
        order = rng.permutation(len(rest))
        extra_pos = max(0, n_pos - used_pos)
        chosen = {rest[i] for i in order[:extra_pos]}
        for p in range(subjects):
            for k in range(2, vps):
                per[p].append(1 if (p, k) in chosen else 0)
            per[p] = [per[p][i] for i in rng.permutation(vps)]
        return per
    flat[:n_pos] = 1
    flat = flat[rng.permutation(total)]
    return [list(map(int, flat[p * vps : (p + 1) * vps])) for p in range(subjects)]


def _assign_splits(rng: np.random.Generator, labels: List[List[int]]) -> List[str]:
    n = len(labels)
    if n == 1:
        return ["train"]
    if n == 2:
        counts = (1, 0, 1)
    else:
        n_val = max(1, int(round(SPLIT_FRACTIONS[1] * n)))
        n_test = max(1, int(round(SPLIT_FRACTIONS[2] * n)))
        counts = (n - n_val - n_test, n_val, n_test)
    best = None
    # A few deterministic shuffles: keep the first one where every split has both classes.
    for _ in range(64):
        order = rng.permutation(n)
        assign = [""] * n
        pos = 0
        for split, c in zip(SPLITS, counts):
            for i in order[pos : pos + c]:
                assign[i] = split
            pos += c
        best = best or assign
        ok = True
        for split, c in zip(SPLITS, counts):
            if c == 0:
                continue
            labs = {lab for i in range(n) if assign[i] == split for lab in labels[i]}
            ok &= labs == {0, 1}
        if ok:
            return assign
    return best


def _look(rng: np.random.Generator) -> Look:
    return Look(
        portrait=PORTRAITS[int(rng.integers(0, len(PORTRAITS)))],
        mirror=bool(rng.random() < 0.5),
        gains=tuple(float(g) for g in rng.uniform(0.82, 1.15, size=3)),
        gamma=float(rng.uniform(0.85, 1.2)),
        face_frac=float(rng.uniform(0.30, 0.38)),
        centre=(float(rng.uniform(0.40, 0.60)), float(rng.uniform(0.42, 0.52))),
        roll=float(rng.uniform(-6.0, 6.0)),
        background=int(rng.integers(0, 2**31 - 1)),
        voice=VOICES[int(rng.integers(0, len(VOICES)))],
        rate=int(rng.integers(155, 190)),
        pitch=int(rng.integers(38, 62)),
    )


def _meta(rng: np.random.Generator) -> Dict[str, object]:
    age = int(rng.integers(18, 70))
    lo = (age // 10) * 10
    eth = ["White", "Black", "Asian", "Latin American", "Arab", "Mixed"][int(rng.integers(0, 6))]
    return {
        "Age": age,
        "Age range": f"{lo}-{lo + 9}",
        "Birth country": ["Canada", "France", "Brazil", "India", "Morocco", "China"][int(rng.integers(0, 6))],
        "Canada province": ["Quebec", "Ontario", "Alberta", "British Columbia"][int(rng.integers(0, 4))],
        "Ethnicity": eth,
        "Ethnicity simplified": "White" if eth == "White" else "Non-white",
        "Gender": ["Female", "Male"][int(rng.integers(0, 2))],
        "Is student": ["Yes", "No"][int(rng.integers(0, 2))],
        "Use in challenges": "Yes",
        "Use in publications": "Yes" if rng.random() < 0.9 else "No",
    }


def _questions(rng: np.random.Generator, k: int) -> List[int]:
    if k <= 7:
        return sorted(int(q) for q in rng.choice(np.arange(1, 8), size=k, replace=False))
    return [1 + (i % 7) for i in range(k)]


def _file_name(rng: np.random.Generator, pid: str, q: int, stamp: _dt.datetime, counter: int) -> str:
    date, time = stamp.strftime("%Y-%m-%d"), stamp.strftime("%H-%M-%S")
    # The first few videos force each quirk of the release so a small dataset has them all.
    forced = {1: "space_sep", 2: "desktop", 3: "all_spaces"}.get(counter)
    r = rng.random()
    kind = forced or ("space_sep" if r < 0.2 else "desktop" if r < 0.27 else "all_spaces" if r < 0.32 else "plain")
    if kind == "all_spaces":
        return f"{pid} Question {q} {date} {time} Video.mp4"
    sep = " " if kind == "space_sep" else "_"
    suffix = DESKTOP_SUFFIXES[int(rng.integers(0, len(DESKTOP_SUFFIXES)))] if kind == "desktop" else ""
    return f"{pid}_Question_{q}_{date}{sep}{time}_Video{suffix}.mp4"


def _intervals(rng: np.random.Generator, n_frames: int, fps: float) -> Tuple[Tuple[int, int], ...]:
    """A/H intervals of at most 3 s covering about 20-35 % of the frames.

    Videos up to ~10 s get 1-2 intervals; longer ones get more, so the A/H share stays the same.
    """
    dur = n_frames / fps
    total = rng.uniform(0.20, 0.35) * dur
    n_int = max(1, int(math.ceil(total / 3.0)))
    if n_int == 1 and total >= 2.6 and rng.random() < 0.5:
        n_int = 2
    lengths = []
    for _ in range(n_int):
        sec = min(3.0, total / n_int * rng.uniform(0.85, 1.15))
        lengths.append(max(2, int(round(sec * fps))))
    # Leave a little fluent speech before, between and after the intervals.
    margin = max(1, int(round(0.4 * fps)))
    free = n_frames - sum(lengths) - margin * (n_int + 1)
    if free < 0:
        lengths = [max(2, (n_frames - margin * (n_int + 1)) // n_int)] * n_int
        free = max(0, n_frames - sum(lengths) - margin * (n_int + 1))
    cuts = np.sort(rng.integers(0, free + 1, size=n_int))
    out = []
    start = margin
    prev = 0
    for length, c in zip(lengths, cuts):
        start += int(c - prev)
        prev = int(c)
        out.append((int(start), int(start + length - 1)))
        start += length + margin
    return tuple(out)
