"""Benchmark of `bah fit-video` recipes on a synthetic release of challenge size, one thread.

    python bench/challenge.py                                   # 300 participants x 5 videos
    python bench/challenge.py --participants 60 --recipes video-text-tfidf,video-multimodal-gated

The release and its video features come from tests/challenge_data.py (planted text and timing
cues). For each recipe: wall and CPU seconds of the whole run (load, every fold and seed, the
final refits, calibration, files), learner fits per CPU-second, the selection / test macro F1
(seed mean ± std and ensemble) and the peak resident memory of the process so far.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # per-core figures: pin BLAS/OpenMP before numpy loads

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from challenge_data import make_release  # noqa: E402

from bah.apps.challenge.cli import resolve_recipe  # noqa: E402
from bah.apps.challenge.experiment import fit_video  # noqa: E402
from bah.apps.challenge.settings import candidate_specs  # noqa: E402
from bah.core.config import load_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=300)
    ap.add_argument("--videos", type=int, default=5, help="videos per participant")
    ap.add_argument("--recipes", default="video-text-tfidf,video-text-timing,video-multimodal-gated")
    ap.add_argument("--seeds", default="0,1,2", help="seed ensemble (the recipes use 3-5)")
    ap.add_argument("--mil-epochs", type=int, default=None, help="override the MIL recipe's epochs")
    args = ap.parse_args()
    p = args.participants
    splits = (int(p * 0.65), int(p * 0.1), p - int(p * 0.65) - int(p * 0.1))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        data, work = make_release(Path(tmp), participants=p, videos=args.videos, splits=splits)
        print(f"synthetic release: {p * args.videos} videos ({splits} participants), "
              f"written in {time.perf_counter() - t:.1f} s")
        for recipe in args.recipes.split(","):
            cfg = load_config(resolve_recipe(recipe), {"challenge.work": str(work)}, sections=["challenge"])["challenge"]
            kw = dict(cfg.learner_kwargs)
            if args.mil_epochs and cfg.learner == "mil":
                kw["epochs"] = args.mil_epochs
            cfg = dataclasses.replace(cfg, seeds=seeds, learner_kwargs=kw)
            fits = len(candidate_specs(cfg)) * len(seeds) * ((cfg.folds + 1) if cfg.protocol == "challenge" else 1)
            t, c = time.perf_counter(), time.process_time()
            run = fit_video(cfg, data, Path(tmp) / "runs" / recipe)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            sel, test = run["metrics"]["selection"], run["metrics"]["test"]
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{recipe:24s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  {fits} fits, {fits / cpu:6.2f} fits/cpu-s  "
                  f"{run['selection']['split']} F1 {sel['mean']['avgf1']:.4f}±{sel['std']['avgf1']:.4f} "
                  f"(ens {sel['ensemble']['avgf1']:.4f})  test F1 {test['mean']['avgf1']:.4f}"
                  f"±{test['std']['avgf1']:.4f} (ens {test['ensemble']['avgf1']:.4f})  "
                  f"threshold {run['threshold']:.2f}  peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
