"""Speed of the feature extractors on this machine (random VGGish / IR-50 weights).

    python bench/features.py [--threads 1] [--seconds 60] [--videos 20] [--faces 512] [--device cpu]

Reports per-core rates when --threads 1: VGGish seconds of compute per minute of audio
(front end and network separately, for both window layouts), MiniLM/BERT videos per
second on BAH-length transcripts, IR-50 and dlib faces per second.
"""
import argparse
import os
import time

import numpy as np


def _timeit(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length for VGGish")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--videos", type=int, default=20, help="transcripts for the text model")
    ap.add_argument("--text-model", default="minilm")
    ap.add_argument("--faces", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", nargs="*", default=[], choices=["vggish", "text", "ir50", "dlib"])
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(a.threads)
    from bah.stages.features import audio as A
    from bah.stages.features.base import VideoInput
    from bah.stages.features.settings import FeatureConfig

    print(f"torch {torch.__version__}, {a.threads} thread(s), device {a.device}")
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(16000 * a.seconds))).astype(np.float32)
    n = int(a.seconds * a.fps)
    per_min = 60.0 / a.seconds
    t_front = _timeit(lambda: A.original_examples(wav, a.fps), 3)
    t_mean = _timeit(lambda: A.centred_mean(wav, np.arange(n) / a.fps, a.fps), 3)
    print(f"log-mel front end (original framing): {t_front * per_min:.3f} s per minute of audio")
    print(f"logmel extractor (centred means):     {t_mean * per_min:.3f} s per minute of audio")

    if "vggish" not in a.skip:
        from bah.stages.features.vggish import VGGish, VGGishExtractor

        net = VGGish()
        for compat in (True, False):
            v = VideoInput("bench", None, n, a.fps, ".")
            v.set_audio(wav)
            ex = VGGishExtractor(FeatureConfig(compat=compat, device=a.device, batch_size=128), model=net)
            t = _timeit(lambda: ex.extract(v))
            print(f"vggish ({'compat' if compat else 'centred'}, random weights, {n} frames): "
                  f"{t * per_min:.2f} s per minute of audio ({n / t:.1f} frames/s)")

    if "text" not in a.skip:
        from bah.stages.features.text import TextEncoder, align_uniform

        enc = TextEncoder(a.text_model, device=a.device)
        words = "well I am not really sure maybe I could try to exercise more but it is hard".split()
        texts = [" ".join(rng.choice(words, 60)) + ". " + " ".join(rng.choice(words, 40)) + "." for _ in range(a.videos)]
        vids = [VideoInput(f"v{i}", None, 900, 30.0, ".", transcript=t) for i, t in enumerate(texts)]
        align_uniform(enc, vids[0], None)  # warm-up
        t = _timeit(lambda: [align_uniform(enc, v, None) for v in vids])
        print(f"text ({a.text_model}, {enc.dim}-d, ~100-word transcripts): {a.videos / t:.1f} videos/s")

    faces = rng.integers(0, 255, (a.faces, 48, 48, 3), dtype=np.uint8)
    if "ir50" not in a.skip:
        from bah.stages.features.visual import IR50Extractor
        from bah.models.ir50 import build_ir50

        ex = IR50Extractor(FeatureConfig(device=a.device, batch_size=128), model=build_ir50())
        ex.embed_faces(faces[:8])
        t = _timeit(lambda: ex.embed_faces(faces))
        print(f"ir50 (40x40, batch 128): {a.faces / t:.1f} faces/s")
    if "dlib" not in a.skip:
        from bah.stages.features.visual import DlibFaceExtractor

        if DlibFaceExtractor.available() is None:
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                np.save(os.path.join(d, "video.npy"), faces[:64])
                ex = DlibFaceExtractor(FeatureConfig())
                v = VideoInput("bench", None, 64, 30.0, d)
                t = _timeit(lambda: ex.extract(v))
                print(f"dlib-face (150x150 chips): {64 / t:.1f} faces/s")


if __name__ == "__main__":
    main()
