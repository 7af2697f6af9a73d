"""Speed of the data layer: annotation YAML (C vs pure-Python safe loader) and manifest probing.

    python bench/data_parsing.py [--videos 60] [--frames 640] [--probe-videos 8]

Writes a synthetic annotation YAML shaped like the release's (one ``[path, label]`` pair per
frame; the real file is ~91 MB for 916,618 frames) and times ``read_annotations`` with
libyaml's ``CSafeLoader`` and with PyYAML's pure-Python ``SafeLoader``; then writes small
mp4 files and times ``build_manifest`` (1 worker). Rates are per core (one process).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml


def _annotation_text(videos: int, frames: int) -> str:
    rng = np.random.default_rng(0)
    parts = []
    for v in range(videos):
        vid = f"Videos/{82500 + v}/Visite_1/{82500 + v}_Question_{v % 7 + 1}_2024-11-19_15-12-23_Video.mp4"
        lab = (rng.random(frames) < 0.3).astype(int)
        lines = "\n".join(f"  - ['{vid}/frame-{i}.jpg', {lab[i]}]" for i in range(frames))
        parts.append(f"'{vid}':\n  global_ah: {int(lab.any())}\n  frame_annotation:\n{lines}\n"
                     f"  fr_detailed_ah:\n  - [10, 50]\n  time_detailed_ah:\n  - !!python/tuple ['00:00:00.400', '00:00:02.000']\n"
                     f"  certainty_ah: [3]\n  all_cues:\n  - {{audio: x, body: null, facial: y, language: z, inconsistencies: null}}\n"
                     f"  annotator_id: MGG\n  transcript: 'Hello, world.'\n")
    return "".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--frames", type=int, default=640)
    ap.add_argument("--probe-videos", type=int, default=8)
    args = ap.parse_args()

    from bah.data import annotations as ann_mod
    from bah.data import read_annotations

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = tmp / "video_annotation_transcript.yaml"
        p.write_text(_annotation_text(args.videos, args.frames), encoding="utf-8")
        mb = p.stat().st_size / 2**20
        n = args.videos * args.frames
        print(f"annotation YAML: {args.videos} videos x {args.frames} frames = {n} frames, {mb:.1f} MB")
        t0 = time.perf_counter()
        anns = read_annotations(p)
        tc = time.perf_counter() - t0
        assert sum(a.n_frames for a in anns.values()) == n
        print(f"  {ann_mod.AnnotationLoader.__mro__[1].__name__:>12}: {tc:6.2f} s  {mb / tc:6.1f} MB/s  "
              f"{n / tc / 1e3:7.1f} k frames/s  -> real 91 MB file ~{91 / (mb / tc):.0f} s")

        class PyLoader(yaml.SafeLoader):
            pass

        PyLoader.add_constructor("tag:yaml.org,2002:python/tuple", ann_mod._construct_tuple)
        t0 = time.perf_counter()
        with open(p, encoding="utf-8") as fh:
            yaml.load(fh, Loader=PyLoader)  # noqa: S506
        tp = time.perf_counter() - t0
        print(f"  {'SafeLoader':>12}: {tp:6.2f} s  {mb / tp:6.1f} MB/s  (C loader is {tp / tc:.1f}x faster)")

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from test_manifest import write_video  # the same PyAV writer the tests use

        from bah.stages.manifest import build_manifest

        root = tmp / "BAH"
        ids = [f"Videos/9{i:04d}/Visite_1/9{i:04d}_Question_1_2024-01-01_00-00-00_Video.mp4"
               for i in range(args.probe_videos)]
        for i, vid in enumerate(ids):
            write_video(root / vid, 250, size=(240, 320), seed=i)  # 10 s at 25 fps
        (root / "split").mkdir()
        (root / "split" / "train.txt").write_text("".join(f"{v},0,x\n" for v in ids), encoding="utf-8")
        t0 = time.perf_counter()
        recs = build_manifest(root, tmp / "out", workers=1)
        tm = time.perf_counter() - t0
        frames = sum(r.n_frames for r in recs)
        print(f"manifest (1 worker, 320x240 mpeg4): {len(recs)} videos, {frames} frames in {tm:.2f} s = "
              f"{frames / tm:.0f} frames/s/core ({len(recs) / tm:.1f} videos/s)")
        t0 = time.perf_counter()
        build_manifest(root, tmp / "out", workers=1)
        print(f"manifest rebuild, nothing changed: {time.perf_counter() - t0:.3f} s (no decoding)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
