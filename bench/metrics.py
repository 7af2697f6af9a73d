"""Benchmark of bah.metrics.frame on one thread: frame_metrics (all metrics, default and compat) on
10 million frames, video_metrics, and the original's threshold-loop AP / sklearn as baselines.

    python bench/metrics.py                       # 10 M frames, baselines on 1 M
    python bench/metrics.py --frames 2000000 --baseline-frames 200000 --repeat 5

Prints wall and CPU seconds (best of --repeat) and frames per CPU-second (one core).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # per-core figures: pin BLAS/OpenMP before numpy loads

import argparse
import platform
import time

import numpy as np

from bah import metrics as M


def _best(fn, repeat):
    """Best wall time of ``repeat`` runs, and the CPU time of that run (on a shared machine
    the CPU time is the steadier per-core figure)."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, cpu = wall, time.process_time() - c
    return (best, cpu), out


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.18).astype(np.int64)
    lg = rng.normal(size=(n, 2)).astype(np.float32)
    lg[:, 1] += 1.6 * y - 1.2  # informative, like the metric fixtures
    return y, lg


def _original_legacy_ap(probs_cl_1, gt):
    """The original's loop (bah_metrics.average_precision), for the speed ratio only."""
    from sklearn.metrics import auc

    l_prec, l_rec = [], []
    for th in np.arange(0, 1, 0.001).tolist():
        preds = (probs_cl_1 >= th).astype(float)
        tp = np.sum(np.logical_and(preds == 1, gt == 1))
        fp = np.sum(np.logical_and(preds == 1, gt == 0))
        fn = np.sum(np.logical_and(preds == 0, gt == 1))
        l_prec.append((tp / (tp + fp)).item() if (tp + fp) > 0 else 0.0)
        l_rec.append((tp / (tp + fn)).item())
    return float(auc(np.array(l_rec), np.array(l_prec)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000_000)
    ap.add_argument("--videos", type=int, default=15_000, help="videos the frames are split into")
    ap.add_argument("--baseline-frames", type=int, default=1_000_000,
                    help="frames for the original-loop and sklearn baselines (0 = skip)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"numpy {np.__version__}, python {platform.python_version()}, {platform.machine()}, 1 thread")
    y, lg = _data(args.frames, args.seed)
    n = args.frames
    rows = []
    for label, kw in (("frame_metrics default (fixed)", {}), ("frame_metrics compat", {"compat": True})):
        sec, m = _best(lambda: M.frame_metrics(y, logits=lg, **kw), args.repeat)
        rows.append((label, n, sec))
        print(f"  {label}: avgf1={m['avgf1']:.6f} ap_legacy={m['ap_legacy']:.6f} ap={m['ap']:.6f} auc={m['auc']:.6f}")
    vidx = np.sort(np.random.default_rng(args.seed + 1).integers(0, args.videos, size=n))
    labels_video = (np.random.default_rng(args.seed + 2).random(args.videos) < 0.5).astype(np.int64)
    sec, _ = _best(lambda: M.video_metrics(vidx, lg, labels_video), args.repeat)
    rows.append((f"video_metrics (3 aggregations, {args.videos} videos)", n, sec))

    nb = min(args.baseline_frames, n)
    if nb > 0:
        yb, lgb = y[:nb], lg[:nb]
        p_leg = M.legacy_softmax(lgb)[:, 1]
        sec_orig, ap_orig = _best(lambda: _original_legacy_ap(p_leg, yb.astype(float)), 1)
        sec_ours, ap_ours = _best(lambda: M.legacy_average_precision(yb, p_leg), args.repeat)
        assert ap_orig == ap_ours, (ap_orig, ap_ours)
        rows.append(("legacy AP, original 1000-threshold loop", nb, sec_orig))
        rows.append(("legacy AP, bah (sort + searchsorted)", nb, sec_ours))
        from sklearn.metrics import average_precision_score, roc_auc_score

        p64 = M.softmax(lgb)[:, 1]
        sec_sk, _ = _best(lambda: (average_precision_score(yb, p64), roc_auc_score(yb, p64)), 1)
        sec_bah, _ = _best(lambda: (M.average_precision(yb, p64), M.roc_auc(yb, p64)), args.repeat)
        rows.append(("AP + ROC-AUC, sklearn", nb, sec_sk))
        rows.append(("AP + ROC-AUC, bah", nb, sec_bah))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'frames':>11}  {'wall s':>7}  {'cpu s':>7}  {'frames/cpu-s':>13}")
    for label, frames, (sec, cpu) in rows:
        print(f"{label:<{width}}  {frames:>11,}  {sec:>7.3f}  {cpu:>7.3f}  {frames / cpu:>13,.0f}")
    if nb > 0:
        print(f"\nlegacy AP speed-up over the original loop (cpu time): {sec_orig[1] / sec_ours[1]:,.0f}x "
              f"(identical value {ap_ours:.12f})")
        print(f"AP + AUC speed-up over sklearn (cpu time): {sec_sk[1] / sec_bah[1]:.1f}x")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (wall times are only meaningful near 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
