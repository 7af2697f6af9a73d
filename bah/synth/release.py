"""Writers of the release's files (split lists, annotation YAML, Whisper YAML, metadata).

Formats follow docs/architecture.md "Identifiers and data" and the shared dataset spec §4;
``bah.data`` parses exactly these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping

import numpy as np
import yaml

from bah.core.files import write_text
from bah.synth.plan import SPLITS, DatasetPlan, VideoPlan

try:  # the C emitter is ~10x faster on the large annotation file
    _Dumper = yaml.CDumper
except AttributeError:  # pragma: no cover
    _Dumper = yaml.Dumper

CLASS_ID_TEXT = "With A-H: 1\nNo A-H: 0"  # 21 bytes, no trailing newline, as in the release

CUES = {
    "audio": "hesitant speech: fillers, pauses, slower and lower voice",
    "body": "head shake",
    "facial": "gaze aversion, eyes closing",
    "language": "hedges (I'm not sure, maybe, I guess)",
    "inconsistencies": None,
}


def dump_yaml(obj) -> str:
    """YAML text with tuples kept as ``!!python/tuple`` (the release's Whisper files have them)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=None, width=4096)


def hhmmss(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def frame_name(video_id: str, i: int) -> str:
    return f"{video_id}/frame-{i}.jpg"


def runs(labels) -> List[List[int]]:
    """Inclusive [start, end] index runs of the 1s of a 0/1 sequence."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(labels, dtype=np.int8), [0]])))
    return [[int(a), int(b) - 1] for a, b in zip(edges[::2], edges[1::2])]


def annotation_entry(v: VideoPlan, transcript: str) -> Dict:
    labels = v.frame_labels()
    entry = {
        "global_ah": int(v.label),
        "frame_annotation": [[frame_name(v.video_id, i), int(labels[i])] for i in range(labels.size)],
        # indices of the frames the video holds (for a VFR video, not the nominal grid)
        "fr_detailed_ah": runs(labels),
        # [first frame's start, last frame's end) in seconds: what every stage maps with frame times
        "time_detailed_ah": [[hhmmss(a), hhmmss(b)] for a, b in v.seconds_intervals()],
        "certainty_ah": list(v.certainty),
        "all_cues": [dict(CUES) for _ in v.intervals],
        "annotator_id": v.annotator,
        "transcript": transcript,
    }
    if not v.frame_annotation:  # the release's gap: intervals only (bah labels rebuilds the frames)
        del entry["frame_annotation"]
    return entry


def write_release(root: Path, plan: DatasetPlan, records: Mapping[str, Mapping]) -> None:
    """Every file but the videos. ``records`` maps video id -> worker record (transcript, chunks)."""
    videos = [v for v in plan.videos if v.video_id in records]
    write_text(root / "class_id.yaml", CLASS_ID_TEXT)
    for split in SPLITS:
        vs = [v for v in videos if v.split == split]
        write_text(root / "split" / f"{split}.txt",
                   "".join(f"{v.video_id},{v.label},{records[v.video_id]['transcript']}\n" for v in vs))
        lines: List[str] = []
        for v in vs:
            labels = v.frame_labels()
            lines.extend(f"{frame_name(v.video_id, i)},{int(labels[i])}\n" for i in range(labels.size))
        write_text(root / "split-frames" / f"{split}.txt", "".join(lines))
    write_text(root / "bah-video.csv", "video-path,label\n" + "".join(f"{v.video_id},{v.label}\n" for v in videos))
    ann = {v.video_id: annotation_entry(v, records[v.video_id]["transcript"]) for v in videos}
    write_text(root / "video_annotation_transcript.yaml", dump_yaml(ann))
    for v in videos:
        rec = records[v.video_id]
        whisper = {
            "text": " " + rec["transcript"],
            "chunks": [{"language": c["language"], "text": c["text"], "timestamp": tuple(c["timestamp"])}
                       for c in rec["whisper_chunks"]],
        }
        write_text(root / "transcription" / v.video_id / f"{v.stem}.yml", dump_yaml(whisper))
    pids = {v.pid for v in videos}
    meta = {p.pid: dict(p.meta) for p in plan.participants if p.pid in pids}
    write_text(root / "meta_data.yml", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    cfg = plan.config
    write_text(root / "version.txt", f"bah-synth 1 (synthetic; seed {cfg.seed})\n")
    write_text(root / "readme.md", README.format(n=len(videos), subjects=len(pids), fps=cfg.fps, seconds=cfg.seconds,
                                                 seed=cfg.seed))


README = """# Synthetic BAH-format dataset

Written by `bah synth` ({n} videos, {subjects} participants, {fps:g} fps, {seconds:g} s, seed {seed}).
Nothing here is real data: faces are sample photographs shipped with scikit-image/matplotlib,
speech is espeak-ng. Ambivalence/hesitancy is planted in the intervals of
`video_annotation_transcript.yaml` (hedged words, hesitant speech, a head shake with averted eyes).
"""
