"""A tiny BAH-layout release plus video-level features in the speech stage's npz contract, with
planted A/H signal, for the challenge tests.

- text: a positive video's transcript holds a hesitation phrase with probability ``text_hit``,
  a negative one with ``text_false``; the rest are neutral sentences;
- timing (``timing``, 3 dims): windows overlapping the A/H segment get ``timing_shift`` more
  "erased time" and pauses, independent of the text, so text + timing beats text alone;
- ``text-embed`` (4 dims): the windows of a video whose transcript holds a hesitation phrase
  are shifted (the window-level view of the text cue);
- prosody (``prosody``, 2 dims) and face (``face-dynamics``, 2 dims): weak shifts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from bah.core.layout import video_features_dir, video_key

NEUTRAL = ["i went to the store and bought some bread", "my family likes to walk in the park",
           "the weather was nice this weekend", "i usually cook dinner at home", "we watched a movie together",
           "i work from home on mondays", "the bus was late again today", "i read a book about history"]
HESITANT = ["um i am not sure maybe", "i guess it depends on the day", "well maybe i could try but i do not know",
            "uh part of me wants to and part of me does not"]
WINDOW_S, HOP_S, DURATION = 5.0, 2.5, 20.0


def _times():
    starts = np.arange(0.0, DURATION - WINDOW_S + 1e-9, HOP_S)
    return np.stack([starts, starts + WINDOW_S], axis=1)


def _ts(sec: float) -> str:
    m, s = divmod(sec, 60.0)
    return f"00:{int(m):02d}:{s:06.3f}"


def make_release(root: Path, participants: int = 48, videos: int = 4, seed: int = 0, text_hit: float = 0.6,
                 text_false: float = 0.2, timing_shift: float = 1.0, face_shift: float = 0.3,
                 splits=(28, 8, 12)):
    """Write ``root/data`` (release) and ``root/work`` (video features); return (data, work)."""
    rng = np.random.default_rng(seed)
    data, work = Path(root) / "data", Path(root) / "work"
    (data / "split").mkdir(parents=True, exist_ok=True)
    times = _times()
    annotations, lines = {}, {"train": [], "val": [], "test": []}
    names = {"timing": ["erased_s", "pause_mean_s", "speech_rate_wps"], "face-dynamics": ["head_motion", "blinks"],
             "prosody": ["f0_mean", "loudness"], "text-embed": [f"e{i}" for i in range(4)]}
    for name, cols in names.items():
        d = video_features_dir(work, name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "meta.json").write_text(json.dumps({"window_s": WINDOW_S, "hop_s": HOP_S, "dim": len(cols),
                                                 "names": cols}))
    bounds = np.cumsum(splits)
    assert bounds[-1] == participants
    for p in range(participants):
        pid = str(80000 + p)
        split = "train" if p < bounds[0] else "val" if p < bounds[1] else "test"
        for q in range(1, videos + 1):
            vid = f"Videos/{pid}/Visite_1/{pid}_Question_{q}_2024-01-0{q}_10-00-00_Video.mp4"
            y = int(rng.random() < 0.5)
            seg = []
            if y:
                start = float(rng.uniform(0, DURATION - 5.0))
                seg = [(start, start + float(rng.uniform(3.0, 5.0)))]
            hit = rng.random() < (text_hit if y else text_false)
            words = [NEUTRAL[i] for i in rng.choice(len(NEUTRAL), 2, replace=False)]
            if hit:
                words.insert(1, HESITANT[int(rng.integers(len(HESITANT)))])
            text = ", ".join(words)
            lines[split].append(f"{vid},{y},{text}")
            annotations[vid] = {"global_ah": y, "time_detailed_ah": [[_ts(a), _ts(b)] for a, b in seg],
                                "certainty_ah": [3] * len(seg), "transcript": text}
            over = np.zeros(len(times))
            for a, b in seg:
                over += np.clip(np.minimum(times[:, 1], b) - np.maximum(times[:, 0], a), 0, None) / WINDOW_S
            timing = rng.normal(size=(len(times), 3)).astype(np.float32)
            timing[:, 0] += timing_shift * 2 * over
            timing[:, 1] += timing_shift * over
            face = rng.normal(size=(len(times), 2)).astype(np.float32)
            face[:, 0] += face_shift * 2 * over
            prosody = rng.normal(size=(len(times), 2)).astype(np.float32)
            prosody[:, 1] += face_shift * 2 * over
            embed = rng.normal(size=(len(times), 4)).astype(np.float32)
            embed[:, :2] += 1.5 * hit
            arrays = {"timing": timing, "face-dynamics": face, "prosody": prosody, "text-embed": embed}
            for name, win in arrays.items():
                np.savez(video_features_dir(work, name) / f"{video_key(vid)}.npz", windows=win,
                         window_times=times, video=win.mean(axis=0).astype(np.float32),
                         names=np.array(names[name]))
    for split, rows in lines.items():
        (data / "split" / f"{split}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (data / "video_annotation_transcript.yaml").write_text(yaml.safe_dump(annotations), encoding="utf-8")
    return data, work
