"""The training loader on a CPU, face transform included, at 48, 128 and 256 px stored faces.

    PYTHONPATH=. python3 bench/loader.py [--sizes 48,128,256] [--videos 6] [--workers 2] [--out DIR]

For each stored face size it writes original-format arrays (``video.npy`` (N,S,S,3) uint8,
``vggish.npy``, ``bert.npy``, labels, ``dataset_info.pkl``; videos of 400-900 frames) and
times the trainer's own loader (``build_datasets`` + ``make_loader``, README configuration:
W=696, H=48, batch 4, faces resized to 48 and cropped to 40, vggish + bert z-scored) as a
CPU-only run uses it: the face transform runs per window in the loader workers.

* ``per core``: one process (0 workers), windows per CPU-second of that process (``time.process_time``);
* ``N workers``: wall-clock windows/s with N persistent workers (the first batch, which pays
  for starting them, is not counted).

The original's loader could not be run here (its code is not in this repository); its figures
are quoted from original-training.md (faces stored at 256 px, 2-core machine: 0.4 s per window
in one process = 2.5 windows per CPU-second, about 5 windows/s with 2 workers) and from issue 17
(about 19 windows/s with 2 workers at 48 px, measured elsewhere): ratios against them are not
same-run ratios.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bah.core.files import write_json
from bah.train.dataset import write_synthetic_arrays
from bah.train.distributed import DistInfo
from bah.train.options import parse_options
from bah.train.trainer import build_datasets, make_loader

ORIGINAL = {"per_core_256": 2.5, "two_workers_256": 5.0, "two_workers_48": 19.0}


def measure(root: Path, size: int, workers: int, batches: int) -> dict:
    argv = ["--dataset_path", str(root), "--modality", "video+vggish+bert+EXPR_continuous_label",
            "--window_length", "696", "--hop_length", "48", "--train_batch_size", "4", "--face_resize", "48",
            "--face_crop", "40", "--num_workers", str(workers), "--stats_cache", str(root)]
    o = parse_options(argv)
    ds = build_datasets(o, splits=("train",), faces_in_workers=True)["train"]
    dl = make_loader(ds, 4, True, o, DistInfo(), epoch_seed=0)
    n, epoch, t0, c0 = 0, 0, None, None
    while True:
        dl.sampler.set_epoch(epoch)
        for b in dl:
            if t0 is None:  # the first batch starts the workers
                t0, c0 = time.perf_counter(), time.process_time()
                continue
            n += len(b["video_id"])
            if n >= 4 * batches:
                break
        if n >= 4 * batches:
            break
        epoch += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert b["inputs"]["video"].shape[-3:] == (3, 40, 40) and b["inputs"]["video"].dtype == torch.float32
    return {"size": size, "workers": workers, "windows": n, "windows_per_s": n / wall,
            "windows_per_cpu_s": n / cpu if workers == 0 else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="48,128,256")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--out", default=None, help="also write loader-bench.json here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.RandomState(0)
    lengths = rng.randint(400, 901, a.videos).tolist()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bah-loader-bench-") as tmp:
        for size in (int(s) for s in a.sizes.split(",")):
            root = Path(tmp) / f"s{size}"
            t = time.perf_counter()
            write_synthetic_arrays(root, {"train": lengths, "val": lengths[:1], "test": lengths[:1]},
                                   {"vggish": 128, "bert": 768}, face_size=size)
            print(f"{size:4d} px: wrote {a.videos} videos ({sum(lengths)} frames) in {time.perf_counter() - t:.1f}s",
                  flush=True)
            one = measure(root, size, 0, 3 if size >= 128 else 8)
            many = measure(root, size, a.workers, 10 if size >= 128 else 30)
            rows += [one, many]
            print(f"{size:4d} px: per core {one['windows_per_cpu_s']:6.2f} windows/CPU-s "
                  f"({1 / one['windows_per_cpu_s']:.3f} CPU-s per window); {a.workers} workers "
                  f"{many['windows_per_s']:6.2f} windows/s", flush=True)
            for f in root.rglob("video.npy"):
                f.unlink()  # the 256 px faces are ~130 MB per video
    res = {"command": "PYTHONPATH=. python3 bench/loader.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items() if v is not None and k != "out"),
        "lengths": lengths, "rows": rows, "original": ORIGINAL}
    by = {(r["size"], r["workers"]): r for r in rows}
    if (256, 0) in by:
        print(f"original at 256 px (docs, not this run): {ORIGINAL['per_core_256']} windows/CPU-s -> ours "
              f"{by[(256, 0)]['windows_per_cpu_s'] / ORIGINAL['per_core_256']:.1f}x")
    if (256, a.workers) in by and a.workers == 2:
        print(f"original at 256 px, 2 workers (docs): {ORIGINAL['two_workers_256']} windows/s -> ours "
              f"{by[(256, 2)]['windows_per_s'] / ORIGINAL['two_workers_256']:.1f}x")
    if (48, a.workers) in by and a.workers == 2:
        print(f"original at 48 px, 2 workers (issue 17): {ORIGINAL['two_workers_48']} windows/s -> ours "
              f"{by[(48, 2)]['windows_per_s'] / ORIGINAL['two_workers_48']:.1f}x")
    if a.out:
        write_json(Path(a.out) / "loader-bench.json", res)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
