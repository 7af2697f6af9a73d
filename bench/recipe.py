"""The whole offline video-level recipe from nothing: `bah run-config RECIPE --synthetic`.

    python bench/recipe.py [--recipe video-text-timing] [--subjects 12,24] [--out DIR]

For each size (participants of `bah synth`, 3 videos each: 12 is `bah synth`'s default set of 36
videos of 8 s) one fresh `bah run-config` process runs synth -> manifest -> transcribe (2 blocks)
-> video-features -> fit-video -> report, and this prints:
- wall seconds, all of it and without `synth` (generating the dataset is not part of the recipe);
- CPU seconds (user + system of every process), and CPU seconds per video of audio-minute;
- seconds per step (the pipeline's own timings.json);
- peak resident memory of the largest single process (Python's RUSAGE_CHILDREN maximum over the
  run-config process and the block processes it starts). Memory bounded per video means the
  peak does not grow with the number of videos: compare the sizes.
The issue's goal: the default set in under 3 minutes on 2 cores. The machine is shared: wall
seconds move with the load (printed); CPU seconds move less.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(recipe: str, subjects: int, out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
    argv = [sys.executable, "-m", "bah.cli", "run-config", str(ROOT / "configs" / f"{recipe}.yaml"), "--synthetic",
            "--out", str(out), "--set", f"synth.subjects={subjects}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"bah run-config failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    steps = json.loads((out / "pipeline" / "timings.json").read_text())["steps"]
    manifest = [json.loads(line) for line in (out / "work" / "manifest.jsonl").read_text().splitlines() if line]
    audio_min = sum(float(r.get("audio_duration") or r.get("duration") or 0) for r in manifest) / 60.0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = [ln for ln in proc.stdout.splitlines() if ln.startswith(("threshold", "video macro F1"))]
    return {"videos": len(manifest), "audio_minutes": audio_min, "wall_s": wall,
            "wall_without_synth_s": wall - steps.get("synth", {}).get("seconds", 0.0), "cpu_s": cpu,
            "cpu_s_per_audio_minute": cpu / max(audio_min, 1e-9),
            "peak_rss_mib": after.ru_maxrss / 1024.0, "load_before": load, "load_after": os.getloadavg()[0],
            "steps": {k: round(v["seconds"], 1) for k, v in steps.items()}, "result": tail}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="video-text-timing")
    ap.add_argument("--subjects", default="12,24", help="synthetic participants per run (3 videos each)")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        for n in (int(s) for s in args.subjects.split(",")):
            r = run_once(args.recipe, n, base / f"{args.recipe}-{n}")
            print(f"{args.recipe}, {r['videos']} videos ({r['audio_minutes']:.1f} audio-min): "
                  f"wall {r['wall_s']:.1f} s ({r['wall_without_synth_s']:.1f} s without synth), "
                  f"CPU {r['cpu_s']:.1f} s ({r['cpu_s_per_audio_minute']:.1f} CPU-s per audio-minute), "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB, load {r['load_before']:.1f}->{r['load_after']:.1f}")
            print(f"  steps (s): {r['steps']}")
            for line in r["result"]:
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
