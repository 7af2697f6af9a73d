"""Speed and memory of the speech pipeline: ASR and VAD real-time factors per core, memory per video.

    python bench/speech.py [--seconds 30] [--threads 1,2] [--videos 4]

Builds a clip of espeak-ng speech (fluent sentences, fillers, pauses) and reports:
- ASR (faster-whisper, the packaged Whisper tiny.en, int8, word timestamps, beam 5): real-time
  factor RTF = processing seconds / audio seconds with 1 and 2 CPU threads, and core-seconds per
  audio second (RTF x threads);
- Silero VAD (onnxruntime, one thread, 512-sample frames): RTF;
- memory: peak resident memory of one `bah video-features` process (timing, prosody, lexical,
  text-embed; ASR on demand) over 1 video, over ``--videos`` copies of it, and over one video
  twice as long. Each case runs in a fresh process; bounded per-video memory means the first
  two are about equal. Numbers on a shared machine are noisy: compare ratios.
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

import numpy as np

SR = 16000


def speech_clip(seconds: float) -> np.ndarray:
    from bah.synth.lexicon import CONFIDENT, FILLERS, HESITANT
    from bah.synth.speech import speak

    rng = np.random.default_rng(0)
    parts, total = [], 0
    while total < seconds * SR:
        if rng.random() < 0.3:
            parts.append(speak(FILLERS[int(rng.integers(len(FILLERS)))], "en-us", 100, 26, SR))
            parts.append(np.zeros(int(0.7 * SR), np.float32))
            parts.append(speak(HESITANT[int(rng.integers(len(HESITANT)))], "en-us", 120, 30, SR))
        else:
            parts.append(speak(CONFIDENT[int(rng.integers(len(CONFIDENT)))], "en-us", 170, 50, SR))
        parts.append(np.zeros(int(rng.uniform(0.15, 0.6) * SR), np.float32))
        total += sum(p.size for p in parts[-2:])
    return (np.concatenate(parts)[: int(seconds * SR)] * 0.8).astype(np.float32)


def _best(fn, repeats: int = 2) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def child(args) -> int:
    """One `bah video-features` run in this process; prints the peak resident memory (MiB)."""
    from bah.core.files import write_jsonl
    from bah.stages.video_features import VideoFeatureConfig
    from bah.stages.video_features.stage import extract_video_features
    from bah.stages.manifest import VideoRecord

    rows = json.loads(Path(args.child).read_text())
    out = Path(args.child).parent / f"out-{os.getpid()}"
    write_jsonl(out / "manifest.jsonl", rows)
    settings = VideoFeatureConfig(extractors=("timing", "prosody", "lexical", "text-embed"))
    res = extract_video_features([VideoRecord.from_dict(r) for r in rows], out, settings, progress=False)
    assert res.failed == 0, res.failures
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    from bah.stages.speech import Recogniser, SileroVad

    audio = speech_clip(args.seconds)
    dur = audio.size / SR
    print(f"clip: {dur:.1f} s of espeak-ng speech with fillers and pauses; {os.cpu_count()} CPUs visible")
    for th in (int(t) for t in args.threads.split(",")):
        t0 = time.perf_counter()
        rec = Recogniser(threads=th)
        load = time.perf_counter() - t0
        words = []
        t = _best(lambda: words.append(rec.recognise(audio)))
        print(f"ASR tiny.en int8, word timestamps, {th} thread(s): load {load:.2f} s, {t:.2f} s -> RTF {t / dur:.3f}, "
              f"{t * th / dur:.3f} core-s per audio s ({len(words[-1].words)} words)")
    vad = SileroVad(threads=1)
    t = _best(lambda: vad.segments(audio))
    print(f"VAD Silero ONNX, 1 thread: {t:.3f} s -> RTF {t / dur:.4f} ({len(vad.segments(audio))} segments)")

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from speech_clips import manifest_row, write_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        short = write_video(tmp / "Videos/1/Visite_1/1_Question_1_Video.mp4", audio, fps=10)
        long_ = write_video(tmp / "Videos/2/Visite_1/2_Question_1_Video.mp4", np.concatenate([audio, audio]), fps=10)
        one = manifest_row("Videos/1/Visite_1/1_Question_1_Video.mp4", short)
        cases = {
            "1 video": [one],
            f"{args.videos} videos": [dict(one, video_id=f"Videos/{k}/Visite_1/{k}_Question_1_Video.mp4")
                                      for k in range(10, 10 + args.videos)],
            "1 video, 2x long": [manifest_row("Videos/2/Visite_1/2_Question_1_Video.mp4", long_)],
        }
        for name, rows in cases.items():
            spec = tmp / f"{len(rows)}-{rows[0]['video_id'].split('/')[1]}.json"
            spec.write_text(json.dumps(rows))
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--child", str(spec)], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            if proc.returncode:
                print(proc.stderr[-2000:])
                return 1
            mib = float(proc.stdout.strip().splitlines()[-1])
            print(f"video-features process, {name}: peak RSS {mib:.0f} MiB, {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
