"""Benchmark of ``bah synth``: seconds per video, frames/s (total and per worker), dlib detection rate.

    python bench/synth.py                          # the default size (12 x 3 x 8 s, 640x480), 2 workers
    python bench/synth.py --subjects 4 --workers 1 --detect 200
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--videos-per-subject", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detect", type=int, default=300, help="frames to run dlib's HOG detector on (0: skip)")
    p.add_argument("--keep", default=None, help="write the dataset here instead of a temporary folder")
    a = p.parse_args()

    from bah.synth import generate_dataset, load_truth

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep or Path(tmp) / "BAH")
        cpu0 = os.times()
        t0 = time.perf_counter()
        generate_dataset(root, subjects=a.subjects, videos_per_subject=a.videos_per_subject, fps=a.fps,
                         seconds=a.seconds, seed=a.seed, width=a.width, height=a.height, workers=a.workers)
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system) + (cpu1.children_user - cpu0.children_user) \
            + (cpu1.children_system - cpu0.children_system)
        n_videos = a.subjects * a.videos_per_subject
        n_frames = n_videos * int(round(a.seconds * a.fps))
        print(f"videos {n_videos}, frames {n_frames}, {a.width}x{a.height} @ {a.fps:g} fps, workers {a.workers}")
        print(f"wall {wall:.1f} s = {wall / n_videos:.2f} s/video, {n_frames / wall:.1f} frames/s "
              f"({n_frames / wall / a.workers:.1f} frames/s per worker); CPU {cpu:.1f} s = "
              f"{n_frames / max(cpu, 1e-9):.1f} frames per CPU-second; load average {os.getloadavg()[0]:.1f}")
        if a.detect:
            _detection(root, a.detect, load_truth)
        _audio_cue(root, load_truth)


def _audio_cue(root: Path, load_truth) -> None:
    """How separable the audio of A/H frames is: voiced share and F0 of voiced frames."""
    import numpy as np

    from bah.core.media import read_audio

    ids = [line.split(",", 1)[0] for s in ("train", "val", "test")
           for line in (root / "split" / f"{s}.txt").read_text(encoding="utf-8").splitlines()]
    voiced = {True: [], False: []}
    centroid = {True: [], False: []}
    for vid in ids:
        truth = load_truth(root, vid)
        audio = read_audio(root / vid, sample_rate=16000)
        n, fps = truth["n_frames"], truth["fps"]
        cue = np.zeros(n, bool)
        for s, e in truth["cue_frames"]:
            cue[s : e + 1] = True
        hop = 16000 / fps
        for i in range(n):
            seg = audio[int(i * hop) : int(i * hop) + 1024]
            if seg.size < 256:
                continue
            rms = float(np.sqrt(np.mean(seg ** 2)))
            voiced[bool(cue[i])].append(rms > 0.01)
            if rms > 0.01:
                # F0 by autocorrelation in 60-400 Hz (the hesitant voice is pitched lower).
                x = seg - seg.mean()
                ac = np.correlate(x, x, mode="full")[x.size - 1 :]
                lo, hi = 16000 // 400, 16000 // 60
                lag = lo + int(np.argmax(ac[lo:hi]))
                centroid[bool(cue[i])].append(16000.0 / lag)
    if centroid[True] and centroid[False]:
        c, n_ = np.array(centroid[True]), np.array(centroid[False])
        auc = float((c[:, None] < n_[None, :]).mean())
        print(f"audio: voiced frames {np.mean(voiced[False]):.0%} neutral vs {np.mean(voiced[True]):.0%} A/H; "
              f"median F0 of voiced frames {np.median(n_):.0f} Hz neutral vs {np.median(c):.0f} Hz A/H "
              f"(AUC of this one number {auc:.2f})")


def _detection(root: Path, budget: int, load_truth) -> None:
    import av
    import dlib
    import numpy as np

    det = dlib.get_frontal_face_detector()
    try:
        import face_recognition_models

        shape = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    except ImportError:
        shape = None
    # Landmark cloud width/height after removing position and scale (what the landmark features see).
    aspect = {"cue": [], "neutral": []}
    ids = [line.split(",", 1)[0] for s in ("train", "val", "test")
           for line in (root / "split" / f"{s}.txt").read_text(encoding="utf-8").splitlines()]
    rng = np.random.default_rng(0)
    stats = {("cue", 0): [0, 0], ("cue", 1): [0, 0], ("neutral", 0): [0, 0], ("neutral", 1): [0, 0]}
    per_video = max(2, budget // max(1, len(ids)))
    for vid in ids:
        truth = load_truth(root, vid)
        cue = np.zeros(truth["n_frames"], bool)
        for s, e in truth["cue_frames"]:
            cue[s : e + 1] = True
        pick = set(rng.choice(truth["n_frames"], size=min(per_video, truth["n_frames"]), replace=False).tolist())
        pick |= {s + (e - s) // 2 for s, e in truth["cue_frames"]}
        with av.open(str(root / vid)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i in pick:
                    img = f.to_ndarray(format="rgb24")
                    kind = "cue" if cue[i] else "neutral"
                    for up in (0, 1):
                        st = stats[(kind, up)]
                        found = det(img, up)
                        st[0] += len(found) == 1
                        st[1] += 1
                        if up == 0 and len(found) == 1 and shape is not None:
                            pts = np.array([[q.x, q.y] for q in shape(img, found[0]).parts()], float)
                            pts -= pts.mean(0)
                            aspect[kind].append(float(pts[:, 0].std() / pts[:, 1].std()))
    for (kind, up), (hit, n) in sorted(stats.items()):
        if n:
            print(f"dlib HOG (upsample {up}) exactly one face on {kind} frames: {hit}/{n} = {hit / n:.1%}")
    if aspect["cue"] and aspect["neutral"]:
        c, n = np.array(aspect["cue"]), np.array(aspect["neutral"])
        auc = float((c[:, None] < n[None, :]).mean() + 0.5 * (c[:, None] == n[None, :]).mean())
        print(f"68-landmark width/height ratio: neutral {n.mean():.3f} +- {n.std():.3f}, cue {c.mean():.3f} +- "
              f"{c.std():.3f}; AUC of this one number for neutral-vs-cue {auc:.2f}")


if __name__ == "__main__":
    main()
