"""Whole-video evaluation time against video length, fixed-mode JMT/MT (vision+vggish+bert), one thread.

    PYTHONPATH=. python3 bench/eval_length.py [--lengths 1500,3000,7500,15000] [--models jmt]

Times one forward pass over a whole video at each length twice: as bah evaluates (attention
local beyond bah.models.jmt.LOCAL_ATTENTION_FROM frames) and with full attention over the whole
video (what the evaluation did before). The ratio of times between lengths says whether the
cost grows linearly. CPU seconds of this process, so other load on the machine matters less.
"""
from __future__ import annotations

import argparse
import time

import torch

import bah.models.jmt as jmt
from bah.models.factory import build_model


def cpu_seconds(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="1500,3000,7500,15000")
    ap.add_argument("--models", default="jmt")
    ap.add_argument("--full", action="store_true", help="also time full attention (slow at 15,000 frames)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    local_from = jmt.LOCAL_ATTENTION_FROM
    print(f"{'model':5s} {'frames':>7s} {'bah CPU s':>10s} {'full CPU s':>11s}")
    for name in a.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, [("vision", 512), ("vggish", 128), ("bert", 768)], False, window_length=696).eval()
        for n in (int(x) for x in a.lengths.split(",")):
            x = {"vision": torch.randn(1, n, 512), "vggish": torch.randn(1, n, 128), "bert": torch.randn(1, n, 768)}
            with torch.inference_mode():
                ours = cpu_seconds(lambda: model(x))
                full = float("nan")
                if a.full:
                    jmt.LOCAL_ATTENTION_FROM = 10**9
                    try:
                        full = cpu_seconds(lambda: model(x))
                    finally:
                        jmt.LOCAL_ATTENTION_FROM = local_from
            print(f"{name:5s} {n:7d} {ours:10.2f} {full:11.2f}", flush=True)


if __name__ == "__main__":
    main()
