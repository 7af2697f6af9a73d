"""Benchmark of `bah predict` on synthetic talking-face clips (one process pinned to one core).

    python bench/predict.py                          # builds a tiny run, then 1- and 5-minute clips
    python bench/predict.py --run RUN_DIR --minutes 1 10 --work /tmp/bench-predict

Per clip: seconds per step (faces, features, model), frames per CPU-second overall and peak RSS
of the predicting process; peak RSS must not grow with the clip length (the arrays are memory
maps in a temporary folder and the model sees ``--chunk-frames`` at a time). The clips come from
``bah.stages.faces.sample`` (640x480, 25 fps) with a tone as their audio track.
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


def child(video: str, run: str, out: str, chunk: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import resource

    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from bah.apps.predict import Predictor

    pr = Predictor(Path(run), device="cpu", chunk_frames=chunk, progress=False)
    c0, t0 = time.process_time(), time.perf_counter()
    res = pr.predict(Path(video), "I am not sure. Maybe, I think so.", Path(out))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"frames": res.n_frames, "cpu_s": cpu, "wall_s": wall, "peak_rss_mb": rss,
                      "steps": {k: round(v, 2) for k, v in res.seconds.items()}}))


def make_clip(dest: Path, minutes: float) -> Path:
    import av

    from bah.stages.faces.sample import write_video

    if dest.exists():
        return dest
    silent = dest.with_suffix(".silent.mp4")
    n = int(round(minutes * 60 * 25))
    write_video(silent, n)
    # mux a 16 kHz tone so the audio extractor does real work
    with av.open(str(silent)) as src, av.open(str(dest), "w", format="mp4") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=16000, layout="mono")
        for pkt in src.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            dst.mux(pkt)
        t = np.arange(int(n / 25 * 16000)) / 16000.0
        a = (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
        for s in range(0, len(a), 1024):
            af = av.AudioFrame.from_ndarray(a[None, s:s + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = 16000, s
            for p in aout.encode(af):
                dst.mux(p)
        for p in aout.encode(None):
            dst.mux(p)
    silent.unlink()
    return dest


def tiny_run(work: Path) -> Path:
    """The tests' recipe: 6 synthetic videos -> faces -> logmel+bert(MiniLM)+landmarks -> CAN, one epoch."""
    from bah.cli import main as bah_main
    from bah.synth import generate_dataset
    from bah.train.cli import main as train_main

    run = work / "runs" / "BAH_DB" / "fold-0" / "id_bench"
    if (run / "passed.txt").exists():
        return run
    root, out = work / "data", work / "out"
    if not root.exists():
        generate_dataset(root, subjects=3, videos_per_subject=2, fps=25, seconds=4.0, seed=0, progress=False)
    common = ["--data-root", str(root), "--out", str(out)]
    for cmd in (["manifest"], ["faces", "--size", "112"],
                ["features", "--extractors", "logmel,bert,landmarks", "--text-model", "minilm"],
                ["labels"], ["index"]):
        if bah_main(cmd + common):
            raise SystemExit(f"bah {cmd[0]} failed")
    train_main(["--dataset_path", str(out), "--output_root", str(work / "runs"), "--exp_id", "bench",
                "--model_name", "can", "--modality", "landmarks+logmel+bert+EXPR_continuous_label",
                "--window_length", "64", "--hop_length", "32", "--num_workers", "0", "--num_epochs", "1",
                "--verbose", "False", "--save_plot", "False"])
    return run


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="a run folder (default: build a tiny one under --work)")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    ap.add_argument("--chunk-frames", type=int, default=4096)
    ap.add_argument("--work", default=None, help="folder for the run and clips (kept, reused)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="bench-predict-"))
    work.mkdir(parents=True, exist_ok=True)
    run = Path(a.run) if a.run else tiny_run(work)
    print(f"run {run}")
    print(f"{'clip':>8} {'frames':>7} {'frames/CPU-s':>13} {'wall s':>7} {'peak RSS':>9}  steps (s)")
    for m in a.minutes:
        clip = make_clip(work / f"clip-{m:g}min.mp4", m)
        proc = subprocess.run([sys.executable, __file__, "--child", str(clip), str(run), str(work / "pred"),
                               str(a.chunk_frames)], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{m:>6g} m {r['frames']:>7} {r['frames'] / r['cpu_s']:>13.1f} {r['wall_s']:>7.1f} "
              f"{r['peak_rss_mb']:>6.0f} MB  {r['steps']}")


if __name__ == "__main__":
    main()
