"""Benchmark of `bah personalize`: seconds per target per method at the synthetic scale.

    python bench/personalization.py                                   # CPU, 16 sources, 3 targets, 1 thread
    python bench/personalization.py --sources 40 --targets 8 --seeds 0,1,2 --device cuda --threads 16
    python bench/personalization.py --source-run RUN --dataset-path OUT   # a real run instead of the toy one

Generates the planted-shift dataset (§3.4), trains a small source run (narrow TCNs), then runs each
method on every target and prints wall and CPU seconds per target per method (CPU seconds on one
thread are the per-core figure) with AVGF1 mean ± std over targets and the gain over source-only.
"""
from __future__ import annotations

import os
import sys

if "--threads" not in sys.argv:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"  # per-core figures: pin BLAS/OpenMP before torch loads

import argparse
import platform
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--sources", type=int, default=16)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--gen-seed", type=int, default=0)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default="adabn,pp_norm,oracle,mmd,subject_uda,shot,nrc")
    ap.add_argument("--steps", type=int, default=100, help="adaptation steps of every learned method")
    ap.add_argument("--width", type=int, default=32, help="TCN width of the toy source run")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--source-run", default=None)
    ap.add_argument("--dataset-path", default=None)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    from bah.core.config import load_config
    from bah.apps.personalization import ShiftConfig, generate_planted_shift, run_experiment
    from bah.apps.personalization.toyrun import train_source_run

    root = Path(a.root or tempfile.mkdtemp(prefix="bench-personalize-"))
    run = a.source_run
    if run is None:
        t = time.perf_counter()
        generate_planted_shift(root / "data", ShiftConfig(sources=a.sources, targets=a.targets, frames=a.frames,
                                                          dim=a.dim, seed=a.gen_seed))
        train_source_run(root / "data", root / "run", width=a.width, epochs=a.epochs)
        print(f"data + toy source run: {time.perf_counter() - t:.1f} s")
        run = root / "run"
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    for method in ["source_only", *a.methods.split(",")]:
        ov = {"personalize.source_run": str(run), "personalize.methods": [method], "personalize.seeds": seeds,
              "personalize.device": a.device, "personalize.dataset_path": a.dataset_path or ""}
        if method != "source_only":
            ov[f"personalize.{method}.steps"] = a.steps
        cfg = load_config(None, ov, sections=["personalize"])["personalize"]
        t, c = time.perf_counter(), time.process_time()
        res = run_experiment(cfg, root / "out", progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        n = max(res["computed"], 1)
        s = res["summary"][method]
        rows.append((method, wall / n, cpu / n, s["avgf1"]["mean"], s["avgf1"]["std"],
                     (s.get("delta_avgf1") or {}).get("mean", 0.0), res["computed"]))
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, device {a.device}, "
          f"{a.threads} thread(s); {a.targets} targets, seeds {seeds}, {a.steps} steps")
    print("| method | wall s / target-seed | CPU s / target-seed | AVGF1 | Δ vs source-only | runs |")
    print("|---|---|---|---|---|---|")
    for m, w, c, f, sd, d, n in rows:
        print(f"| {m} | {w:.2f} | {c:.2f} | {f:.3f} ± {sd:.3f} | {d:+.3f} | {n} |")
    print(f"(the first row includes loading the source run; results in {root / 'out'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
