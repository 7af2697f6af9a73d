"""Forward+backward time per training window for every registered model (CPU by default).

    python bench/models.py                      # B=4, L=696, README widths, vision path, 1 thread
    python bench/models.py --threads 2 --models jmt can --repeat 5 --amp bf16
    python bench/models.py --faces 8            # also time IR-50 on 8 faces of 40x40 (per face)

Reports wall seconds per window (one B x L batch), CPU seconds per window, and windows/s per
core computed from CPU time (all threads' CPU time counts, so it is a per-core rate).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bah.models import MODELS, create_model, describe

MODS = [("vision", 512), ("vggish", 128), ("bert", 768)]


def bench_model(name: str, batch: int, length: int, repeat: int, amp: str | None, compat: bool) -> dict:
    torch.manual_seed(0)
    mods = MODS if name != "unimodal" else MODS[:1]
    model = create_model(name, mods, compat=compat, window_length=length).train()
    x = {m: torch.randn(batch, length, d) for m, d in mods}
    mask = torch.ones(batch, length, dtype=torch.bool)
    times, cpu = [], []
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=getattr(torch, amp or "bfloat16"), enabled=amp is not None):
            out = model(x, mask)
        out["logits"].float().sum().backward()
        model.zero_grad(set_to_none=True)
        if i:  # the first pass warms allocator and kernels
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    sec = statistics.median(times)
    # CPU seconds too: on a shared machine wall time also counts other people's jobs.
    return {"cpu_sec_per_window": statistics.median(cpu), "model": name, "compat": compat, "amp": amp or "fp32", "batch": batch, "length": length,
            "sec_per_window": sec,
            "windows_per_s_per_core": 1.0 / statistics.median(cpu),
            "params": describe(model)["total"]}


def bench_ir50(faces: int, repeat: int) -> dict:
    from bah.models import build_ir50

    net = build_ir50().eval()
    x = torch.rand(faces, 3, 40, 40) * 2 - 1
    times = []
    with torch.no_grad():
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            net(x)
            if i:
                times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    return {"model": "ir50(eval)", "faces": faces, "sec_per_face": sec / faces,
            "faces_per_s_per_core": faces / sec / torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=MODELS.list(), default=MODELS.list())
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=696)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--amp", choices=["bfloat16", "float16"], default=None)
    p.add_argument("--compat", action="store_true", help="original numerics (JMT/MT batch-mixing attention)")
    p.add_argument("--faces", type=int, default=0, help="also time IR-50 on this many 40x40 faces")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench_model(n, args.batch, args.length, args.repeat, args.amp, args.compat) for n in args.models]
    if args.faces:
        rows.append(bench_ir50(args.faces, args.repeat))
    for r in rows:
        if "sec_per_window" in r:
            print(f"{r['model']:9s} {r['amp']:8s} B={r['batch']} L={r['length']}: {r['sec_per_window']*1000:8.1f} ms/window "
                  f"fwd+bwd ({r['cpu_sec_per_window']*1000:.1f} ms CPU), {r['windows_per_s_per_core']:.2f} windows/s/core ({r['params']:,} params)")
        else:
            print(f"{r['model']:9s} {r['sec_per_face']*1000:.1f} ms/face, {r['faces_per_s_per_core']:.1f} faces/s/core")
    if args.json:
        from bah.core.files import write_json
        write_json(args.json, {"threads": args.threads, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
