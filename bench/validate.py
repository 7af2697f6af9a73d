"""Cost of checking every input array before a training run (bah.train.validation).

    python bench/validate.py [--videos 1000] [--frames 100] [--faces 0]

Writes ``--videos`` synthetic videos in the trainer's layout (vggish 128-d + bert 768-d float32
and the labels, optionally ``--faces`` px uint8 faces), then times ``input_problems`` (open
every array memory-mapped, check dtype/shape/rows, finiteness of the float ones) twice: the
first pass after writing (page cache mostly warm, as on a node that just staged the data),
and again. Reported per core (one process): seconds, videos/s, MB/s. The real release has
~1,100 videos of ~800 frames: scale by the MB/s.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--faces", type=int, default=0, help="also write (N, S, S, 3) uint8 faces of this size")
    args = ap.parse_args()

    from bah.train.dataset import write_synthetic_arrays
    from bah.train.options import parse_options
    from bah.train.validation import input_problems

    with tempfile.TemporaryDirectory() as tmp:
        n_val = max(1, args.videos // 10)
        lengths = {"train": [args.frames] * (args.videos - 2 * n_val), "val": [args.frames] * n_val,
                   "test": [args.frames] * n_val}
        t0 = time.perf_counter()
        root = write_synthetic_arrays(Path(tmp) / "d", lengths, {"vggish": 128, "bert": 768}, face_size=args.faces)
        t_write = time.perf_counter() - t0
        mb = sum(f.stat().st_size for f in root.rglob("*.npy")) / 2**20
        modality = ("video+" if args.faces else "") + "vggish+bert+EXPR_continuous_label"
        o = parse_options(["--dataset_path", str(root), "--output_root", str(Path(tmp) / "runs"),
                           "--modality", modality])
        print(f"{args.videos} videos x {args.frames} frames, modalities {modality}: {mb:.0f} MB "
              f"(written in {t_write:.1f} s); {os.cpu_count()} cores, one used")
        for label in ("first pass", "second pass"):
            t0 = time.perf_counter()
            problem = input_problems(o)
            dt = time.perf_counter() - t0
            assert problem is None, problem
            print(f"  {label:>11}: {dt:6.2f} s  {args.videos / dt:7.0f} videos/s  {mb / dt:7.0f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
