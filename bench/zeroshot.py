"""Speed of the zero-shot path that does not depend on a real model.

    python bench/zeroshot.py [--seconds 20] [--fps 25] [--repeat 3] [--device cpu]

* frame sampling per video: the compat sampler (container count, one partial decode) vs the
  fixed sampler (a timestamp pass + a partial decode), on a 640x480 mp4 of ``--seconds``;
* the cache key of one 8-frame 224 px item (sha256 over the pixels);
* one call of the tiny random Video-LLaVA (generate 10 tokens + 2 candidate scores) and of
  the tiny causal LM, to check placement/dtype; real models are orders of magnitude slower.

Rates are per core: torch runs on one thread, decoding on one thread.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _video(path: Path, seconds: float, fps: int) -> None:
    from bah.core.media import write_video

    base = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    frames = (np.roll(base, i * 3, axis=1) for i in range(int(seconds * fps)))
    write_video(path, frames, fps, codec="mpeg4")

def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from bah.apps.zeroshot.backend import Item
    from bah.apps.zeroshot.frames import CompatSampler, FixedSampler, VideoFileSource
    from bah.apps.zeroshot.hf_backend import HFTextBackend, HFVideoBackend
    from bah.apps.zeroshot.prompt import load_prompts
    from bah.apps.zeroshot.tiny_model import save_tiny_causal_lm, save_tiny_video_llava

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "v.mp4"
        _video(path, args.seconds, args.fps)
        n = int(args.seconds * args.fps)
        print(f"video: 640x480, {n} frames ({args.seconds:g} s at {args.fps} fps)")
        for name, sampler in (("compat", CompatSampler(8, 224)), ("fixed", FixedSampler(8, 224))):
            t = _best(lambda: sampler.sample(VideoFileSource(path)), args.repeat)
            print(f"  sampler {name:6s}: {t * 1000:7.1f} ms/video  ({n / t:7.0f} decoded frames/s/core)")
        frames, _ = CompatSampler(8, 224).sample(VideoFileSource(path))
        book = load_prompts()
        item = Item("v", frames, "I want to stop but maybe not now.", book.render("td1", "I want to stop but maybe not now."),
                    book.candidates)
        t = _best(item.input_hash, max(args.repeat, 10))
        print(f"  cache key (8 x 224 px frames): {t * 1000:.2f} ms")
        vl, lm = save_tiny_video_llava(tmp / "vl"), save_tiny_causal_lm(tmp / "lm")
        be = HFVideoBackend(model=str(vl), device=args.device)
        be.predict(item)  # warm-up
        t = _best(lambda: be.predict(item), args.repeat)
        print(f"  tiny Video-LLaVA call on {args.device} (generate 10 + 2 scores): {t * 1000:.1f} ms")
        bt = HFTextBackend(model=str(lm), device=args.device)
        text_item = Item("v", None, item.transcript, book.render("td1", item.transcript, video=False), book.candidates)
        bt.predict(text_item)
        t = _best(lambda: bt.predict(text_item), args.repeat)
        print(f"  tiny causal LM call on {args.device} (generate 10 + 2 scores): {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
