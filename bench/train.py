"""Trainer speed: data-loader windows/s alone, training windows/s and evaluation videos/s per model.

    python bench/train.py [--videos 24] [--workers 2] [--models can,jmt,lfan,mt] [--video-path]

Writes synthetic per-video arrays (faces stored at 48 px, vggish 128, bert 768, 'vision' 512
embeddings) under a temporary folder, then times:
  * loader: WindowDataset + collate, W=696/H=48, batch 4, uint8 faces (no model), and the same
    plus the batch FaceTransform (48 -> 40 crop, flip, [-1,1]) on the CPU;
  * train (vision path: cached 512-d embeddings + vggish + bert) windows/s per model;
  * eval: whole videos, batch 1, videos/s per model;
  * optionally the video path (faces through the frozen IR-50), tiny on CPU.
Rates are per process; divide by the cores used (torch threads x workers) for per-core figures.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from bah.train import engine
from bah.train.augmentation import FaceTransform
from bah.train.dataset import WindowDataset, collate, split_records, write_synthetic_arrays
from bah.models.factory import build_model


def time_loader(ds, batch, workers, transform=None, batches=60):
    """windows/s over ``batches`` batches (several passes when the split is small), start-up excluded."""
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate,
                    prefetch_factor=4 if workers else None, persistent_workers=workers > 0,
                    generator=torch.Generator().manual_seed(0))
    n, seen, t0 = 0, 0, None
    while seen < batches:
        for b in dl:
            if t0 is None:
                t0 = time.perf_counter()  # first batch = worker start-up
            else:
                n += len(b["video_id"])
            if transform is not None:
                transform(b["inputs"]["video"])
            seen += 1
            if seen >= batches:
                break
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="can,jmt,lfan,mt")
    ap.add_argument("--window", type=int, default=696)
    ap.add_argument("--hop", type=int, default=48)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--video-path", action="store_true", help="also time faces through IR-50 (slow on CPU)")
    ap.add_argument("--root", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.root or tempfile.mkdtemp(prefix="bah-bench-"))
    rng = np.random.RandomState(0)
    lens = rng.randint(400, 900, a.videos).tolist()
    if not (root / "dataset_info.pkl").exists():
        t = time.perf_counter()
        write_synthetic_arrays(root, {"train": lens, "val": lens[:4], "test": lens[:4]},
                               {"vggish": 128, "bert": 768, "vision": 512}, face_size=48)
        print(f"wrote {a.videos} videos ({sum(lens)} frames) in {time.perf_counter() - t:.1f}s under {root}")
    recs = split_records(root, "train")
    faces = WindowDataset(recs, ["video", "vggish", "bert"], a.window, a.hop, train=True)
    print(f"\n[loader] W={a.window} H={a.hop} batch 4, {len(faces)} windows, {a.workers} workers")
    r = time_loader(faces, 4, a.workers)
    print(f"  faces+vggish+bert uint8 batches:          {r:8.1f} windows/s  ({r / max(a.workers, 1):.1f} per worker)")
    tf = FaceTransform(48, 40, train=True)
    r = time_loader(faces, 4, a.workers, transform=tf)
    print(f"  + FaceTransform on CPU (main process):    {r:8.1f} windows/s")
    vis = WindowDataset(recs, ["vision", "vggish", "bert"], a.window, a.hop, train=True)
    r = time_loader(vis, 4, a.workers)
    print(f"  vision path (512-d embeddings) batches:   {r:8.1f} windows/s")

    print(f"\n[train/eval] vision path, {a.threads} torch threads, batch 4, W={a.window}")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    val = WindowDataset(split_records(root, "val"), ["vision", "vggish", "bert"], a.window, a.hop, train=False)
    dims = [("vision", 512), ("vggish", 128), ("bert", 768)]
    for name in a.models.split(","):
        model = build_model(name, dims, False, window_length=a.window).to(dev)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
        dl = DataLoader(vis, batch_size=4, shuffle=True, num_workers=a.workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
        it = iter(dl)
        batches = [next(it) for _ in range(a.steps)]
        t = time.perf_counter()
        engine.train_one_epoch(model, opt, batches, dev, 0, progress=False)
        tr = 4 * a.steps / (time.perf_counter() - t)
        vdl = DataLoader(val, batch_size=1, collate_fn=collate)
        t = time.perf_counter()
        engine.predict(model, vdl, dev, progress=False)
        ev = len(val) / (time.perf_counter() - t)
        print(f"  {name:5s} train {tr:7.2f} windows/s   eval {ev:6.2f} videos/s")
    if a.video_path:
        w = 32
        print(f"\n[video path] faces through IR-50, W={w}, batch 2 (CPU: tiny on purpose)")
        fds = WindowDataset(recs, ["video", "vggish", "bert"], w, w, train=True)
        for name in a.models.split(","):
            model = build_model(name, [("video", None), ("vggish", 128), ("bert", 768)], False,
                                window_length=w).to(dev)
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
            batches = [collate([fds[i], fds[i + 1]]) for i in range(0, 4, 2)]
            t = time.perf_counter()
            engine.train_one_epoch(model, opt, batches, dev, 0, transform=tf, progress=False)
            print(f"  {name:5s} train {4 / (time.perf_counter() - t):7.2f} windows/s")


if __name__ == "__main__":
    main()
