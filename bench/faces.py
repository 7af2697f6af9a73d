"""Benchmark of the face stage on synthetic 640x480 25 fps talking-face videos (one process, one core).

    python bench/faces.py                      # 60 s clip: frames/s, time per step, peak RSS, quality
    python bench/faces.py --minutes 10         # add a 10-minute clip: peak RSS must not grow with length
    python bench/faces.py --work /tmp/bench    # keep the generated videos there (reused on the next run)

Each measurement runs in a fresh child process pinned to one CPU core (OMP/OpenCV threads = 1),
so the frames/s is a per-core rate and the peak RSS is the stage's alone. The rate is frames per
CPU-second of that process (on a shared machine wall time measures the neighbours); the wall
rate is printed too.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def child(video: str, out: str, size: int, detect_every: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import resource

    import cv2

    cv2.setNumThreads(1)
    from bah.stages.faces.settings import FaceConfig
    from bah.stages.faces.stage import VideoJob, run_block
    from bah.core.media import probe

    n = probe(video).n_frames
    cfg = FaceConfig(size=size, detect_every=detect_every)
    from bah.stages.faces.aligner import FaceAligner

    aligner = FaceAligner(cfg)  # model loading (seconds, once per process) is not part of the rate
    aligner.clock = time.process_time  # CPU time: the machine may be shared, wall time would be noise
    rss_models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, c = time.perf_counter(), time.process_time()
    counts = run_block([VideoJob("V/bench.mp4", Path(video), n)], Path(out), cfg, force=True,
                       progress=False, aligner=aligner)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
    st = json.loads((Path(out) / "stages/faces/status/V/bench.mp4.json").read_text())
    print(json.dumps({"frames": n, "wall_s": wall, "fps": n / wall, "cpu_s": cpu, "fps_cpu": n / cpu, "status": st, "counts": counts,
                      "rss_after_models_mb": rss_models,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(video: Path, out: Path, size: int, detect_every: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(video), str(out), str(size), str(detect_every)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def quality(work: Path, size: int, detect_every: int) -> dict:
    """Aligned eye and mouth points: residual to the template, and error against the ground truth.

    The face moves by a known similarity T_k (bah.stages.faces.sample.placement), so a perfect aligner's
    A_k o T_k is the same map on every frame; the ground-truth error is how far A_k o T_k sends the
    portrait's eye/mouth points from where the map fitted on the still portrait sends them.
    """
    from bah.stages.faces.alignment import arcface_template, fit_similarity, five_points, transform_points
    from bah.stages.faces.sample import placement, write_video

    video = work / "still-talkless.mp4"
    if not video.exists():
        write_video(video, 250, talk=False)
    out = work / "out-quality"
    run_child(video, out, size, detect_every)
    rec = np.load(out / "features/compacted_48/V/bench.mp4/face_record.npz")
    tmpl = arcface_template(size)
    idx = [0, 1, 3, 4]  # eyes and mouth corners
    pts_k = [five_points(lm) for lm in rec["landmarks68"]]
    resid = np.array([np.linalg.norm(transform_points(rec["affine"][k], p) - tmpl, axis=1)[idx]
                      for k, p in enumerate(pts_k)])
    inv = [np.linalg.inv(np.vstack([placement(k), [0, 0, 1]]))[:2] for k in range(len(pts_k))]
    portrait = np.mean([transform_points(inv[k], p) for k, p in enumerate(pts_k)], axis=0)
    ideal = fit_similarity(portrait, tmpl)
    target = transform_points(ideal, portrait)
    gt = np.array([np.linalg.norm(transform_points(rec["affine"][k], transform_points(placement(k), portrait))
                                  - target, axis=1)[idx] for k in range(len(pts_k))])
    return {"size": size, "frames": len(pts_k),
            "template_residual_px": {"mean": float(resid.mean()), "worst": float(resid.max()),
                                     "per_point_mean": resid.mean(0).round(2).tolist()},
            "ground_truth_error_px": {"mean": float(gt.mean()), "worst": float(gt.max()),
                                      "per_point_mean": gt.mean(0).round(2).tolist()}}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the main clip")
    ap.add_argument("--minutes", type=float, default=0.0, help="also run a clip this many minutes long (RSS check)")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--detect-every", type=int, default=5)
    ap.add_argument("--work", default=None, help="folder for the generated videos (default: a temporary one)")
    args = ap.parse_args()
    from bah.stages.faces.sample import write_video

    work = Path(args.work or tempfile.mkdtemp(prefix="bah-bench-faces-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    lengths = [("main", args.seconds)] + ([("long", args.minutes * 60)] if args.minutes else [])
    for name, seconds in lengths:
        video = work / f"talking-{int(seconds)}s.mp4"
        if not video.exists():
            t = time.perf_counter()
            write_video(video, int(round(seconds * 25)))
            print(f"generated {video} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        r = run_child(video, work / f"out-{name}", args.size, args.detect_every)
        steps = r["status"]["step_seconds"]
        total = sum(steps.values())
        results[name] = {
            "frames": r["frames"], "seconds_of_video": seconds,
            "frames_per_cpu_s": round(r["fps_cpu"], 1), "frames_per_wall_s": round(r["fps"], 1),
            "step_share_of_cpu": {k: round(v / r["cpu_s"], 3) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
            "other_share": round(1 - total / r["cpu_s"], 3),
            "detector_runs": r["status"]["detector_runs"], "detected_frames": r["status"]["n_detected"],
            "rss_after_models_mb": round(r["rss_after_models_mb"]), "peak_rss_mb": round(r["peak_rss_mb"]),
        }
        print(name, json.dumps(results[name]), file=sys.stderr)
    results["quality"] = quality(work, args.size, args.detect_every)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
