"""Speed of the last two preprocessing stages: ``bah labels`` and ``bah index``.

    python bench/labels_index.py [--videos 200] [--frames 640]

Builds a fake output tree (manifest + per-video arrays: labels, a (N,128) feature, a small
face array) and an annotation YAML shaped like the release's, then times, in one process
(per-core rates):
- reading the annotation YAML (C loader when PyYAML has it);
- ``label_videos`` (parse each entry, conform, write with backup) — first run and an idempotent rerun;
- ``build_index`` (header-only checks of every array) + ``write_index``;
- ``build_index --check-finite`` (reads all float data).
The release has 1,427 videos and ~916,618 frames: the figures scale linearly.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=640, help="mean frames per video (±25%%)")
    args = ap.parse_args()

    from bah.core.files import write_jsonl
    from bah.stages.index import IndexConfig, build_index, write_index
    from bah.stages.labels import LABEL_FILE, AnnotationSource, LabelConfig, label_videos
    from bah.core.layout import manifest_path, video_dir
    from bah.stages.manifest import VideoRecord

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = tmp / "out"
        recs, parts = [], []
        for v in range(args.videos):
            pid = 82500 + v // 5
            vid = f"Videos/{pid}/Visite_1/{pid}_Question_{v % 7 + 1}_2024-11-19_15-12-{v % 60:02d}_Video.mp4"
            n = int(rng.integers(int(args.frames * 0.75), int(args.frames * 1.25) + 1))
            split = ("train", "val", "test")[v % 3]
            label = int(v % 2)
            recs.append(VideoRecord(video_id=vid, split=split, participant=str(pid), question=v % 7 + 1,
                                    label=label, transcript="well, maybe", path=f"/data/{vid}", n_frames=n,
                                    avg_fps=25.0))
            d = video_dir(out, vid)
            d.mkdir(parents=True)
            np.save(d / LABEL_FILE, np.full(n, label, np.int64))
            np.save(d / "vggish.npy", rng.standard_normal((n, 128)).astype(np.float32))
            np.save(d / "video.npy", np.zeros((n, 4, 4, 3), np.uint8))
            m = n + (2 if v % 10 == 0 else 0)  # some resampled
            lab = (rng.random(m) < 0.3).astype(int)
            lines = "\n".join(f"  - ['{vid}/frame-{i}.jpg', {lab[i]}]" for i in range(m))
            parts.append(f"'{vid}':\n  global_ah: {label}\n  frame_annotation:\n{lines}\n")
        write_jsonl(manifest_path(out), [r.to_dict() for r in recs])
        ann = tmp / "video_annotation_transcript.yaml"
        ann.write_text("".join(parts), encoding="utf-8")
        frames = sum(r.n_frames for r in recs)
        mb = ann.stat().st_size / 1e6
        print(f"{args.videos} videos, {frames} frames, annotation YAML {mb:.1f} MB")

        cfg = LabelConfig(annotation=ann)
        t = time.perf_counter()
        source = AnnotationSource(cfg, None)
        t_yaml = time.perf_counter() - t
        print(f"annotation YAML load: {t_yaml:.2f} s ({mb / t_yaml:.1f} MB/s, {frames / t_yaml:,.0f} frames/s)")
        for name in ("labels (first run)", "labels (rerun, unchanged)"):
            t = time.perf_counter()
            rep = label_videos(out, recs, source, cfg, progress=False)
            dt = time.perf_counter() - t
            print(f"{name}: {dt:.2f} s, {len(recs) / dt:,.0f} videos/s, {frames / dt:,.0f} frames/s "
                  f"({len(rep.written)} written, {len(rep.resampled)} resampled, {len(rep.failed)} failed)")
        t = time.perf_counter()
        res = build_index(out, recs, progress=False)
        write_index(out, res, split_files=True)
        dt = time.perf_counter() - t
        print(f"index (headers only): {dt:.2f} s, {len(recs) / dt:,.0f} videos/s")
        t = time.perf_counter()
        build_index(out, recs, IndexConfig(check_finite=True), progress=False)
        dt = time.perf_counter() - t
        print(f"index --check-finite: {dt:.2f} s, {len(recs) / dt:,.0f} videos/s, {frames * 128 * 4 / dt / 1e6:,.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
