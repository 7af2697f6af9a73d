"""GPU benchmark of the trainer at the original's README configuration, beside the original's figures.

    PYTHONPATH=. python3 bench/gpu.py --out OUT [--budget-s 300] [--models jmt,lfan,can] [--workers N]
    PYTHONPATH=. python3 bench/gpu.py --tiny --out OUT      # CPU, tiny sizes, seconds (tests/test_bench_gpu.py)

Builds a synthetic dataset in the original on-disk format in a temporary folder (24 training
videos of 400-900 frames, faces 256x256x3 uint8 per frame in ``video.npy`` (``--face-size``; the
original's figures were measured on 256 px faces; the trainer's face cache resizes them to 48 once), ``vggish.npy`` (N,128),
``bert.npy`` (N,768), ``vision.npy`` (N,512), ``EXPR_continuous_label.npy``, ``dataset_info.pkl``),
then, in one process, with the trainer's own option parser, datasets, loader, model factory,
optimiser and engine (README configuration: W=696, H=48, B=4, faces 48 -> crop 40,
video+vggish+bert, IR-50 with random weights, SGD):

* correctness: GPU float32 logits (TF32 off) against CPU float64 on a small batch, every model,
  ``video`` and ``vision`` paths, |err| <= 2e-5 * max(1, max|ref|) (original-training.md,
  "Tolerances"); a checkpoint saved on the GPU (bah.train.checkpoint) loads on the CPU, gives the
  same logits and takes a training step there;
* loader alone (windows/s), the IR-50 alone on B*W faces, the GPU-bound train step (batches
  already on the device; ms/step, windows/s) for fp16 / bf16 autocast, with and without
  channels-last, compat (the original's behaviour) and fixed mode, and ``torch.compile`` last,
  while the budget lasts; end-to-end training (windows/s) and evaluation on whole videos
  (frames/s, cold and warm pass); peak GPU memory per measurement; the ``vision`` path
  (precomputed 512-d embeddings instead of faces).

Every measurement runs in its own try/except (the error string goes into the JSON) and is
skipped once ``--budget-s`` is spent. Writes ``<out>/gpu-bench.json`` and ``<out>/gpu-bench.md``
(the original's figures beside ours, as ratios). Timers are read after a device synchronise;
each measurement is a few warm-up steps then a fixed number of timed steps.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import itertools
import os
import platform
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np
import torch

from bah.core.files import write_json, write_text
from bah.models.factory import build_model, fixed_length_of, model_kwargs
from bah.models.ir50 import build_ir50
from bah.train import engine
from bah.train.augmentation import FaceTransform
from bah.train.checkpoint import load_checkpoint, save_checkpoint
from bah.train.dataset import WindowDataset, collate, write_synthetic_arrays
from bah.train.distributed import DistInfo
from bah.train.optim import create_optimizer, optimizer_kwargs
from bah.train.options import parse_options
from bah.train.trainer import build_datasets, make_loader, modality_dims

# original-training.md, "Measured speed of the original trainer": commit 5c8471f, README
# configuration, one H200, 16 CPU cores, 12 workers, AMP fp16, torch 2.11, 2026-11-26.
ORIGINAL: Dict[str, Any] = {
    "source": "docs original-training.md, 'Measured speed of the original trainer' (H200, torch 2.11, 2026-11-26)",
    "loader_windows_per_s": 15.8,
    "backbone_train_fp16_ms": 138.0,
    "backbone_eval_bf16_cl_compiled_ms": 38.8,
    "train_step_ms": {"jmt": 149.0, "lfan": 144.0, "can": 145.0},
    "train_step_windows_per_s": {"jmt": 26.8, "lfan": 27.7, "can": 27.6},
    "train_e2e_windows_per_s": {"jmt": 21.3, "lfan": 17.6, "can": 16.2},
    "eval_gpu_frames_per_s": 22000.0,
    "eval_e2e_frames_per_s": [2700.0, 3700.0],
    "peak_train_gib": 5.1,
    "peak_eval_gib": 2.0,
}
# issue 17, "Speed goals".
GOALS = {"jmt_video_e2e_windows_per_s": 100.0, "vision_e2e_windows_per_s": 1000.0,
         "eval_e2e_frames_per_s": 30000.0, "loader_over_train_step": 2.0}
MODEL_NAMES = {"jmt": "JMT", "lfan": "LFAN", "can": "CAN", "mt": "MT"}
LABEL = "EXPR_continuous_label"


def log(msg: str) -> None:
    print(msg, flush=True)


class Recorder:
    """Runs measurements under a time budget; one failure never loses the others."""

    def __init__(self, budget_s: float, device: torch.device):
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.device = device
        self.rows: List[Dict[str, Any]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def run(self, section: str, fn: Callable[[], Dict[str, Any]], *, model: str = "", path: str = "",
            variant: str = "", need_s: float = 0.0, limit_s: Optional[float] = None) -> Dict[str, Any]:
        """``limit_s``: stop the measurement after this long (a compilation that never ends must
        not take the rest of the run with it); it is then recorded as an error."""
        row: Dict[str, Any] = {"section": section, "model": model, "path": path, "variant": variant}
        label = " ".join(x for x in (section, model, path, variant) if x)
        if self.left() < need_s:
            row.update(status="skipped", error=f"budget: {self.left():.0f}s left, needs ~{need_s:.0f}s")
            log(f"[{self.elapsed():6.1f}s] {label}: skipped ({row['error']})")
            self.rows.append(row)
            return row
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        try:
            with time_limit(limit_s):
                row.update(fn())
            row["status"] = "ok"
        except Exception as exc:  # recorded, and the next measurement runs
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
            traceback.print_exc()
        gc.collect()  # a finished measurement's loader and its persistent workers go now
        if cuda:
            with contextlib.suppress(Exception):
                torch.cuda.synchronize()
                row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        row["wall_s"] = round(time.perf_counter() - t, 2)
        shown = {k: v for k, v in row.items() if k not in ("section", "model", "path", "variant")}
        log(f"[{self.elapsed():6.1f}s] {label}: {shown}")
        self.rows.append(row)
        return row


class MeasurementTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: Optional[float]):
    """Raise MeasurementTimeout in the main thread after ``seconds`` (POSIX interval timer)."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise MeasurementTimeout(f"stopped after {seconds:.0f}s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def exact_float32():
    """TF32 off while comparing float32 against float64 (TF32 has a 10-bit mantissa)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[0], saved[1]
        torch.set_float32_matmul_precision(saved[2])


# ----------------------------------------------------------------------------- configuration
def sizes(tiny: bool, face_size: Optional[int] = None) -> Dict[str, Any]:
    """``face_size``: the stored faces (the original was measured on faces stored at 256 px, as the
    release stores them; the face cache resizes them to 48 once, timed as ``face_cache_build_s``)."""
    if tiny:
        return dict(window=16, hop=8, batch=2, face_size=face_size or 16, resize=12, crop=8, train_videos=(4, 20, 40),
                    eval_videos=(2, 20, 40), warmup=1, steps=2, e2e_steps=3, check_len=8)
    return dict(window=696, hop=48, batch=4, face_size=face_size or 256, resize=48, crop=40,
                train_videos=(24, 400, 900), eval_videos=(8, 400, 900), warmup=3, steps=10, e2e_steps=30,
                check_len=16)


def write_dataset(root: Path, sz: Dict[str, Any]) -> Dict[str, Any]:
    rng = np.random.RandomState(0)
    n, lo, hi = sz["train_videos"]
    train = rng.randint(lo, hi + 1, n).tolist()
    n, lo, hi = sz["eval_videos"]
    val = rng.randint(lo, hi + 1, n).tolist()
    write_synthetic_arrays(root, {"train": train, "val": val, "test": val[: max(1, len(val) // 4)]},
                           {"vggish": 128, "bert": 768, "vision": 512}, face_size=sz["face_size"])
    return {"root": str(root), "train_lengths": train, "val_lengths": val, "face_size": sz["face_size"],
            "train_frames": int(sum(train)), "val_frames": int(sum(val))}


def options(root: Path, out: Path, sz: Dict[str, Any], model: str, path: str, *, compat: bool = False,
            amp_dtype: str = "bfloat16", workers: int = 0, extra: Iterable[str] = ()) -> Any:
    visual = "video" if path == "video" else "vision"
    argv = ["--dataset_path", str(root), "--output_root", str(out / "runs"), "--model_name", MODEL_NAMES[model],
            "--modality", f"{visual}+vggish+bert+{LABEL}", "--window_length", str(sz["window"]),
            "--hop_length", str(sz["hop"]), "--train_batch_size", str(sz["batch"]), "--num_workers", str(workers),
            "--face_resize", str(sz["resize"]), "--face_crop", str(sz["crop"]), "--amp", "True",
            "--amp_dtype", amp_dtype, "--compat", str(compat), "--verbose", "False", "--deterministic", "False",
            "--stats_cache", str(out / "stats"), *extra]
    return parse_options(argv)


class Setup:
    """A model, its optimiser and options, built by the trainer's factories."""

    def __init__(self, ctx: "Context", model: str, path: str, *, compat: bool = False, amp_dtype: str = "bfloat16",
                 channels_last: bool = False, compile: bool = False, compile_model: str = "off"):
        self.o = options(ctx.root, ctx.out, ctx.sz, model, path, compat=compat, amp_dtype=amp_dtype,
                         workers=ctx.workers)
        self.ds = ctx.datasets(path)
        torch.manual_seed(0)
        self.model = build_model(self.o.model_name, modality_dims(self.ds["train"]), self.o.compat,
                                 **model_kwargs(self.o)).to(ctx.device)
        engine.optimise_backbone(self.model, channels_last=channels_last, compile=compile)
        self.train_model = engine.compiled_for_training(self.model, compile_model)
        self.optimizer = create_optimizer(self.model, **optimizer_kwargs(self.o))
        self.scaler = engine.make_scaler(ctx.device, True, amp_dtype)
        self.amp_dtype = amp_dtype
        self.train_tf = FaceTransform(self.o.face_resize, self.o.face_crop, train=True)
        self.eval_tf = FaceTransform(self.o.face_resize, self.o.face_crop, train=False)
        self.gen = torch.Generator(device=ctx.device).manual_seed(1)
        self.device = ctx.device

    def train(self, batches: Iterable[Dict[str, Any]]) -> Dict[str, float]:
        return engine.train_one_epoch(self.train_model, self.optimizer, batches, self.device, 0, scaler=self.scaler,
                                      amp=True, amp_dtype=self.amp_dtype, transform=self.train_tf,
                                      generator=self.gen, progress=False)

    def predict(self, loader: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
        return engine.predict(self.model, loader, self.device, transform=self.eval_tf, amp=True,
                              amp_dtype=self.amp_dtype, fixed_length=fixed_length_of(self.model),
                              hop_length=self.o.hop_length, keep_amp_dtype=self.o.compat, progress=False)


class Context:
    def __init__(self, root: Path, out: Path, sz: Dict[str, Any], device: torch.device, workers: int):
        self.root, self.out, self.sz, self.device, self.workers = root, out, sz, device, workers
        self.info = DistInfo(device=device)
        self._datasets: Dict[str, Dict[str, WindowDataset]] = {}
        self._device_batches: Dict[str, List[Dict[str, Any]]] = {}
        self.kept: Optional[Setup] = None  # a compiled set-up, reused by the next measurement

    def datasets(self, path: str) -> Dict[str, WindowDataset]:
        if path not in self._datasets:
            o = options(self.root, self.out, self.sz, "jmt", path, workers=self.workers)
            self._datasets[path] = build_datasets(o, splits=("train", "val"))
        return self._datasets[path]

    def loader(self, path: str, split: str, batch: Optional[int] = None):
        o = options(self.root, self.out, self.sz, "jmt", path, workers=self.workers)
        ds = self.datasets(path)[split]
        return make_loader(ds, batch or (self.sz["batch"] if split == "train" else 1), split == "train", o,
                           self.info, epoch_seed=0)

    def device_batches(self, path: str, split: str, batch: int = 1) -> List[Dict[str, Any]]:
        """A few batches moved to the device once (uint8 faces), for GPU-bound timings."""
        key = f"{path}/{split}/{batch}"
        if key not in self._device_batches:
            ds = self.datasets(path)[split]
            if split == "train":
                b = self.sz["batch"]
                n = min(len(ds) // b, 4)
                batches = [collate([ds[i] for i in range(k * b, (k + 1) * b)]) for k in range(max(n, 1))]
            else:
                batches = [collate([ds[i] for i in range(k, min(k + batch, len(ds)))])
                           for k in range(0, len(ds), batch)]
            self._device_batches[key] = [engine.to_device(x, self.device) for x in batches]
        return self._device_batches[key]


def cycle(batches: List[Any], n: int) -> Iterator[Any]:
    return itertools.islice(itertools.cycle(batches), n)


def batches_from(loader, n: int) -> Iterator[Any]:
    """``n`` batches, over as many epochs as needed (as the trainer iterates its loader)."""
    seen = 0
    while seen < n:
        for b in loader:
            yield b
            seen += 1
            if seen >= n:
                return


# ----------------------------------------------------------------------------- measurements
def check_logits(ctx: Context, model: str, path: str) -> Dict[str, Any]:
    """GPU float32 (TF32 off) vs CPU float64 logits, fixed mode, eval mode, one small batch."""
    sz = ctx.sz
    o = options(ctx.root, ctx.out, sz, model, path)
    base = ctx.datasets(path)["train"]
    n = sz["check_len"]
    ds = WindowDataset(base.videos[:2], base.modalities, n, n, train=True, stats=base.stats, seed=0)
    batch = collate([ds[0], ds[1]])
    tf = FaceTransform(o.face_resize, o.face_crop, train=False)
    torch.manual_seed(0)
    m = build_model(o.model_name, modality_dims(base), False, **model_kwargs(o)).eval()
    ref_in = engine.to_device(batch, torch.device("cpu"), tf)
    with torch.no_grad():
        ref = copy.deepcopy(m).double()({k: v.double() for k, v in ref_in["inputs"].items()}, mask=ref_in["mask"])
        ref = ref["logits"]
        with exact_float32():
            dev_in = engine.to_device(batch, ctx.device, tf)
            got = copy.deepcopy(m).to(ctx.device)(dev_in["inputs"], mask=dev_in["mask"])["logits"]
            got = got.double().cpu()
        with engine.autocast(ctx.device, True, "bfloat16"):
            amp = copy.deepcopy(m).to(ctx.device)(dev_in["inputs"], mask=dev_in["mask"])["logits"].double().cpu()
    scale = max(1.0, float(ref.abs().max()))
    err = float((got - ref).abs().max())
    tol = 2e-5 * scale
    return {"max_abs_err": err, "scale": scale, "tol": tol, "passed": bool(err <= tol),
            "bf16_max_abs_err": float((amp - ref).abs().max()), "shape": list(ref.shape)}


def check_checkpoint(ctx: Context, model: str = "jmt", path: str = "video") -> Dict[str, Any]:
    """Two training steps on the device, save_checkpoint there, load on the CPU: same eval logits,
    optimizer state restored, and one more training step runs on the CPU."""
    s = Setup(ctx, model, path, amp_dtype="bfloat16")
    batches = ctx.device_batches(path, "train")
    s.train(cycle(batches, 2))
    ck_path = ctx.out / "tmp" / "gpu-checkpoint.pth"
    ck_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ck_path, {"model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
                              "scaler": s.scaler.state_dict() if s.scaler else None, "epoch": 0})
    ck = load_checkpoint(ck_path, map_location="cpu")
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    m = build_model(s.o.model_name, modality_dims(s.ds["train"]), False, **model_kwargs(s.o))
    m.load_state_dict(ck["model"])
    opt = create_optimizer(m, **optimizer_kwargs(s.o))
    opt.load_state_dict(ck["optimizer"])
    small = WindowDataset(s.ds["train"].videos[:2], s.ds["train"].modalities, ctx.sz["check_len"],
                          ctx.sz["check_len"], train=True, stats=s.ds["train"].stats, seed=0)
    batch = collate([small[0], small[1]])
    with torch.no_grad(), exact_float32():
        s.model.eval()
        m.eval()
        x = engine.to_device(batch, ctx.device, s.eval_tf)
        want = s.model(x["inputs"], mask=x["mask"])["logits"].double().cpu()
        xc = engine.to_device(batch, cpu, s.eval_tf)
        got = m(xc["inputs"], mask=xc["mask"])["logits"].double()
    scale = max(1.0, float(want.abs().max()))
    err = float((got - want).abs().max())
    momentum = [st.get("momentum_buffer") for st in opt.state.values()]
    state_on_cpu = all(b is None or b.device.type == "cpu" for b in momentum) and len(momentum) > 0
    before = [p.detach().clone() for p in m.parameters() if p.requires_grad]
    res = engine.train_one_epoch(m, opt, [batch], cpu, 1, transform=s.train_tf, progress=False)
    after = [p.detach() for p in m.parameters() if p.requires_grad]
    moved = any(not torch.equal(a, b) for a, b in zip(after, before))
    tol = 2e-5 * scale
    return {"max_abs_err": err, "tol": tol, "optimizer_state_on_cpu": state_on_cpu, "cpu_step_loss": res["loss"],
            "cpu_step_changed_weights": moved,
            "passed": bool(err <= tol and state_on_cpu and np.isfinite(res["loss"]) and moved)}


def time_loader(ctx: Context, path: str, n: int) -> Dict[str, Any]:
    loader = ctx.loader(path, "train")
    t = time.perf_counter()
    it = batches_from(loader, n + 1)
    next(it)
    start = time.perf_counter() - t
    t = time.perf_counter()
    windows = sum(len(b["video_id"]) for b in it)
    dt = time.perf_counter() - t
    return {"windows_per_s": windows / dt, "frames_per_s": windows * ctx.sz["window"] / dt, "startup_s": start,
            "batches": n, "workers": ctx.workers, "persistent_workers": bool(getattr(loader, "persistent_workers", 0)),
            "pin_memory": bool(loader.pin_memory)}


def time_backbone(ctx: Context, train_mode: bool, dtype: str, channels_last: bool, compile: bool) -> Dict[str, Any]:
    """The IR-50 alone on B*W faces (one training step's worth), forward only, frozen."""
    sz, dev = ctx.sz, ctx.device
    torch.manual_seed(0)
    m = build_ir50(sz["crop"]).to(dev)
    for p in m.parameters():
        p.requires_grad_(False)
    m.train(train_mode)
    n = sz["batch"] * sz["window"]
    x = torch.rand(n, 3, sz["crop"], sz["crop"], device=dev) * 2 - 1
    if channels_last:
        m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if compile:
        m.compile()
    ctxm = torch.no_grad() if not train_mode else contextlib.nullcontext()

    def once():
        with ctxm, engine.autocast(dev, True, dtype):
            return m(x)

    t = time.perf_counter()
    for _ in range(sz["warmup"]):
        once()
    sync(dev)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(sz["steps"]):
        once()
    sync(dev)
    dt = (time.perf_counter() - t) / sz["steps"]
    return {"ms": dt * 1e3, "faces_per_s": n / dt, "faces": n, "warmup_s": warm}


def time_train_step(ctx: Context, model: str, path: str, *, compat: bool, amp_dtype: str, channels_last: bool,
                    compile: bool = False, compile_model: str = "off", keep: bool = False) -> Dict[str, Any]:
    """GPU-bound training steps. ``keep`` leaves the set-up in ``ctx.kept`` (a compiled model's
    end-to-end run then does not compile again)."""
    ctx.kept = None
    s = Setup(ctx, model, path, compat=compat, amp_dtype=amp_dtype, channels_last=channels_last, compile=compile,
              compile_model=compile_model)
    batches = ctx.device_batches(path, "train")
    # a compiled model compiles (and records CUDA graphs) per batch kind (padded or not) in warm-up
    warmup = ctx.sz["warmup"] if compile_model == "off" else 2 * len(batches) + 1
    t = time.perf_counter()
    s.train(cycle(batches, warmup))
    sync(ctx.device)
    warm = time.perf_counter() - t
    steps = ctx.sz["steps"]
    t = time.perf_counter()
    res = s.train(cycle(batches, steps))
    sync(ctx.device)
    dt = time.perf_counter() - t
    if keep:
        ctx.kept = s
    return {"ms_per_step": dt / steps * 1e3, "windows_per_s": steps * ctx.sz["batch"] / dt, "warmup_s": warm,
            "loss": res["loss"]}


def time_train_e2e(ctx: Context, model: str, path: str, *, compat: bool, amp_dtype: str,
                   channels_last: bool, kept: bool = False) -> Dict[str, Any]:
    """``kept``: reuse the set-up the previous train_step left (already compiled and warm)."""
    if kept:
        if ctx.kept is None:
            raise RuntimeError("no set-up kept from the train_step measurement (did it fail?)")
        s, ctx.kept = ctx.kept, None
    else:
        s = Setup(ctx, model, path, compat=compat, amp_dtype=amp_dtype, channels_last=channels_last)
        s.train(cycle(ctx.device_batches(path, "train"), ctx.sz["warmup"]))  # cudnn autotuning is not the loader's
    loader = ctx.loader(path, "train")
    n = ctx.sz["e2e_steps"]
    t = time.perf_counter()
    it = batches_from(loader, n + 1)
    first = next(it)
    start = time.perf_counter() - t
    sync(ctx.device)
    t = time.perf_counter()
    res = s.train(itertools.chain([first], it))
    sync(ctx.device)
    dt = time.perf_counter() - t
    return {"windows_per_s": res["windows"] / dt, "steps": n + 1, "startup_s": start, "loss": res["loss"]}


SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def count_ops(ctx: Context, model: str, path: str, *, padded: bool, steps: int = 4) -> Dict[str, Any]:
    """Operators, kernels and host synchronisations per training step (fixed mode, bf16 autocast,
    train_one_epoch over ``steps`` device batches, face transform included), from torch.profiler.

    ``aten_ops``: operators called from Python (aten events without an aten parent), i.e. the
    host's dispatch work, the figure that bounds a launch-bound step; ``host_syncs``: host reads
    of device values (``aten::_local_scalar_dense``: ``.item()``, ``bool(t)``, ``.tolist()``...)
    plus, on CUDA, explicit stream/device synchronisations; ``kernels``: device kernels (CUDA
    only). The 2 reads at the end of train_one_epoch are spread over ``steps``. ``padded``: the
    model gets the mask (a batch with padded frames) rather than None (no padding)."""
    from torch.profiler import ProfilerActivity, profile

    s = Setup(ctx, model, path, amp_dtype="bfloat16", channels_last=ctx.device.type == "cuda")
    base = ctx.device_batches(path, "train")[0]
    batch = {**base, "full": not padded}  # engine.model_mask: None for a batch without padding
    s.train([batch])  # warm: cudnn autotuning, lazy inits
    sync(ctx.device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.device.type == "cuda" else [])
    t = time.perf_counter()
    with profile(activities=acts) as prof:
        s.train([batch] * steps)
        sync(ctx.device)
    wall = time.perf_counter() - t
    ev = prof.events()
    aten = [e for e in ev if e.name.startswith("aten::")]
    roots = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    reads = sum(1 for e in aten if e.name == "aten::_local_scalar_dense")
    waits = sum(1 for e in ev if e.name in SYNC_CALLS)
    kernels = sum(1 for e in ev if e.device_type.name == "CUDA")
    top: Dict[str, int] = {}
    for e in roots:
        top[e.name] = top.get(e.name, 0) + 1
    return {"aten_ops_per_step": len(roots) / steps, "all_aten_ops_per_step": len(aten) / steps,
            "host_reads_per_step": reads / steps, "sync_calls_per_step": waits / steps,
            "kernels_per_step": kernels / steps if ctx.device.type == "cuda" else None,
            "profiled_ms_per_step": wall / steps * 1e3, "steps": steps,
            "top_ops": dict(sorted(top.items(), key=lambda kv: -kv[1])[:12])}


class _Timed:
    """Iterates a loader, noting when its first batch arrived (worker start-up)."""

    def __init__(self, loader):
        self.loader, self.first_s, self.first_frames = loader, None, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        t = time.perf_counter()
        for i, b in enumerate(self.loader):
            if i == 0:
                self.first_s = time.perf_counter() - t
                self.first_frames = int(b["mask"].sum())
            yield b


def time_eval(ctx: Context, model: str, path: str, *, compat: bool, amp_dtype: str, channels_last: bool,
              batch: int = 1) -> Dict[str, Any]:
    s = Setup(ctx, model, path, compat=compat, amp_dtype=amp_dtype, channels_last=channels_last)
    frames = sum(v.length for v in ctx.datasets(path)["val"].videos)
    dev_batches = ctx.device_batches(path, "val", batch)
    out: Dict[str, Any] = {"frames": frames, "videos": len(ctx.datasets(path)["val"]), "eval_batch": batch}
    for tag in ("gpu_cold", "gpu_warm"):
        sync(ctx.device)
        t = time.perf_counter()
        s.predict(dev_batches)
        sync(ctx.device)
        out[f"{tag}_frames_per_s"] = frames / (time.perf_counter() - t)
    # one loader for both passes, as the trainer keeps its validation loader (persistent workers):
    # the cold pass pays the workers' start-up, the warm one does not
    loader = ctx.loader(path, "val", batch)
    for tag in ("e2e_cold", "e2e_warm"):
        timed = _Timed(loader)
        t = time.perf_counter()
        preds = s.predict(timed)
        sync(ctx.device)
        dt = time.perf_counter() - t
        out[f"{tag}_frames_per_s"] = frames / dt
        out[f"{tag}_first_batch_s"] = timed.first_s
        if timed.first_s is not None and frames > timed.first_frames:  # past the first batch: the steady rate
            out[f"{tag}_after_first_frames_per_s"] = (frames - timed.first_frames) / (dt - timed.first_s)
    scored = sum(len(p["labels"]) for p in preds.values())
    if not s.o.compat and scored != frames:
        raise AssertionError(f"evaluation scored {scored} frames, the videos have {frames}")
    return out


# ----------------------------------------------------------------------------- report
def _get(rows: List[Dict[str, Any]], section: str, model: str = "", path: str = "", variant: str = "",
         key: str = "") -> Optional[float]:
    for r in rows:
        if (r["section"], r["model"], r["path"], r["variant"]) == (section, model, path, variant) and r["status"] == "ok":
            v = r.get(key)
            return float(v) if isinstance(v, (int, float)) else None
    return None


def _fmt(v: Optional[float], nd: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def _ratio(ours: Optional[float], orig: Optional[float], lower_is_better: bool = False) -> str:
    if ours is None or orig is None or ours == 0:
        return "-"
    r = orig / ours if lower_is_better else ours / orig
    return f"{r:.2f}x"


def markdown(res: Dict[str, Any]) -> str:
    meta, rows, og = res["meta"], res["measurements"], ORIGINAL
    lines = [f"# bench/gpu.py on {meta['device_name']}", "",
             f"- date: {meta['date']}", f"- command: `{meta['command']}`",
             f"- torch {meta['torch']}, CUDA {meta['cuda']}, Python {meta['python']}, {meta['cpus']} CPUs, "
             f"{meta['workers']} loader workers", f"- configuration: {meta['config']}",
             f"- original's figures: {og['source']}",
             f"- elapsed: {res['elapsed_s']:.0f} s; correctness checks passed: {res['correctness']['passed']}",
             f"- face cache: faces stored at {res.get('dataset', {}).get('face_size', '?')} px, cached at the "
             f"training size: {res.get('dataset', {}).get('faces_cached')}; datasets built (cache included) in "
             f"{_fmt(res.get('dataset', {}).get('face_cache_build_s'))} s", "",
             *(["**--tiny: CPU smoke run at tiny sizes; the ratios below mean nothing.**", ""] if meta["tiny"] else []),
             "Ratios are ours / original for rates, original / ours for times (higher = we are faster). "
             "`fixed` = bah's default model behaviour (frozen backbone in eval mode, no gradient through it); "
             "`compat` = the original's (backbone BatchNorm in train mode, the original's quirks).", "",
             "| what | model | path | variant | ours | original | ratio | peak GiB |", "|---|---|---|---|---|---|---|---|"]

    def add(what, r, key, orig, unit, lower=False, nd=1):
        v = r.get(key) if r.get("status") == "ok" else None
        ours = f"{_fmt(v, nd)} {unit}" if v is not None else (r.get("status", "-") + (": " + r["error"][:80]
                                                                                      if r.get("error") else ""))
        lines.append(f"| {what} | {r['model']} | {r['path']} | {r['variant']} | {ours} | "
                     f"{_fmt(orig, nd) + ' ' + unit if orig is not None else '-'} | "
                     f"{_ratio(v, orig, lower) if v is not None else '-'} | {_fmt(r.get('peak_gib'), 2)} |")

    for r in rows:
        sec, m = r["section"], r["model"]
        if sec == "loader":
            add("loader alone", r, "windows_per_s", og["loader_windows_per_s"] if r["path"] == "video" else None, "win/s")
        elif sec == "backbone":
            orig = og["backbone_train_fp16_ms"] if r["variant"].startswith("train") else og["backbone_eval_bf16_cl_compiled_ms"]
            add("IR-50 alone, B*W faces", r, "ms", orig, "ms", lower=True)
        elif sec == "train_step":
            orig = og["train_step_windows_per_s"].get(m) if r["path"] == "video" else None
            add("train step, GPU-bound", r, "windows_per_s", orig, "win/s")
            if r.get("status") == "ok":
                add("  ms per step", r, "ms_per_step", og["train_step_ms"].get(m) if r["path"] == "video" else None,
                    "ms", lower=True)
        elif sec == "train_e2e":
            add("train, end to end", r, "windows_per_s", og["train_e2e_windows_per_s"].get(m), "win/s")
        elif sec == "eval":
            add("eval, GPU-bound (warm)", r, "gpu_warm_frames_per_s", og["eval_gpu_frames_per_s"], "frames/s", nd=0)
            add("eval, end to end (cold)", r, "e2e_cold_frames_per_s", og["eval_e2e_frames_per_s"][1], "frames/s", nd=0)
            add("eval, end to end (warm)", r, "e2e_warm_frames_per_s", og["eval_e2e_frames_per_s"][1], "frames/s", nd=0)
            if r.get("e2e_warm_after_first_frames_per_s") is not None:
                add("  warm, past the first video", r, "e2e_warm_after_first_frames_per_s",
                    og["eval_e2e_frames_per_s"][1], "frames/s", nd=0)
    ops = [r for r in rows if r["section"] == "ops"]
    if ops:
        lines += ["", "## Operators per training step", "",
                  "From torch.profiler over a few train_one_epoch steps (face transform included): operators "
                  "called from Python (the host's launch work), host reads of device values, explicit "
                  "synchronisations, device kernels.", "",
                  "| model | path | variant | aten ops | host reads | sync calls | kernels | profiled ms |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in ops:
            if r.get("status") != "ok":
                lines.append(f"| {r['model']} | {r['path']} | {r['variant']} | {r.get('status')}: "
                             f"{r.get('error', '')[:80]} | | | | |")
                continue
            lines.append(f"| {r['model']} | {r['path']} | {r['variant']} | {_fmt(r['aten_ops_per_step'], 0)} | "
                         f"{_fmt(r['host_reads_per_step'], 2)} | {_fmt(r['sync_calls_per_step'], 2)} | "
                         f"{_fmt(r.get('kernels_per_step'), 0)} | {_fmt(r['profiled_ms_per_step'], 1)} |")
    lines += ["", "Evaluation ratios are against the upper end (3,700 frames/s) of the original's 2,700-3,700. "
              f"The original's peak GPU memory: {og['peak_train_gib']} GiB training, {og['peak_eval_gib']} GiB "
              "evaluation.", "", "## Speed goals (issue 17)", "", "| goal | target | measured | met |",
              "|---|---|---|---|"]
    for g in res["goals"]:
        lines.append(f"| {g['goal']} | {g['target']} | {_fmt(g['measured'])} | {g['met']} |")
    lines += ["", "## Correctness", "", "| check | model | path | max abs err | tolerance | passed |",
              "|---|---|---|---|---|---|"]
    for c in res["correctness"]["checks"]:
        lines.append(f"| {c['check']} | {c.get('model', '')} | {c.get('path', '')} | "
                     f"{c.get('max_abs_err', '-') if c.get('status') == 'ok' else c.get('error', '')[:80]} | "
                     f"{c.get('tol', '-')} | {c.get('passed', False)} |")
    errs = [r for r in rows if r["status"] != "ok"]
    if errs:
        lines += ["", "## Not measured", ""]
        lines += [f"- {r['section']} {r['model']} {r['path']} {r['variant']}: {r['status']}: {r.get('error', '')}"
                  for r in errs]
    return "\n".join(lines) + "\n"


def goals(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    def best(section, model, path, key):
        vals = [r[key] for r in rows if r["section"] == section and r["status"] == "ok"
                and (not model or r["model"] == model) and r["path"] == path and isinstance(r.get(key), (int, float))]
        return max(vals) if vals else None

    out = []
    jmt = best("train_e2e", "jmt", "video", "windows_per_s")
    out.append({"goal": "JMT video path, end to end", "target": "100 win/s", "measured": jmt,
                "met": jmt is not None and jmt >= GOALS["jmt_video_e2e_windows_per_s"]})
    vis = best("train_e2e", "", "vision", "windows_per_s")
    out.append({"goal": "vision path, end to end (best model)", "target": "1,000 win/s", "measured": vis,
                "met": vis is not None and vis >= GOALS["vision_e2e_windows_per_s"]})
    ev = best("eval", "", "video", "e2e_warm_frames_per_s")
    out.append({"goal": "evaluation end to end (video path, best)", "target": "30,000 frames/s", "measured": ev,
                "met": ev is not None and ev >= GOALS["eval_e2e_frames_per_s"]})
    ld, st = best("loader", "", "video", "windows_per_s"), best("train_step", "", "video", "windows_per_s")
    ratio = ld / st if ld and st else None
    out.append({"goal": "loader alone / fastest GPU-bound train step (video path)", "target": ">= 2", "measured": ratio,
                "met": ratio is not None and ratio >= GOALS["loader_over_train_step"]})
    return out


# ----------------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu-bench.json / gpu-bench.md")
    ap.add_argument("--tiny", action="store_true", help="CPU, tiny sizes: checks that everything runs")
    ap.add_argument("--budget-s", type=float, default=300.0, help="skip what is left after this many seconds")
    ap.add_argument("--models", default="jmt,lfan,can")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default min(12, CPUs))")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-limit-s", type=float, default=90.0,
                    help="stop a compiled-model measurement (compilation included) after this many seconds")
    ap.add_argument("--root", default=None, help="dataset folder (default: a temporary folder)")
    ap.add_argument("--face-size", type=int, default=None,
                    help="stored face size in px (default 256, as the original was measured; --tiny 16)")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if a.tiny:
        device = torch.device("cpu")
        workers = 1 if a.workers is None else a.workers
    else:
        if not torch.cuda.is_available():
            print("bench/gpu.py: no CUDA device here; use --tiny for a CPU smoke run", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        workers = min(12, cpus) if a.workers is None else a.workers
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    models = [m.strip().lower() for m in a.models.split(",") if m.strip()]
    sz = sizes(a.tiny, a.face_size)
    rec = Recorder(a.budget_s, device)
    meta = {"device": str(device), "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else
            f"CPU ({platform.processor() or platform.machine()})", "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "cpus": cpus, "workers": workers,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "PYTHONPATH=. python3 bench/gpu.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])),
            "tiny": a.tiny, "budget_s": a.budget_s,
            "config": (f"W={sz['window']} H={sz['hop']} B={sz['batch']} faces {sz['face_size']} px stored, "
                       f"resize {sz['resize']} -> crop {sz['crop']}, video|vision+vggish+bert, IR-50 random "
                       f"weights, SGD (README defaults), {sz['warmup']} warm-up + {sz['steps']} timed steps, "
                       f"{sz['e2e_steps']} end-to-end steps")}
    log(f"bench/gpu.py: {meta['device_name']}, torch {meta['torch']}, {cpus} CPUs, {workers} workers, "
        f"budget {a.budget_s:.0f}s")
    tmp = tempfile.TemporaryDirectory(prefix="bah-gpu-bench-")
    root = Path(a.root) if a.root else Path(tmp.name) / "data"
    res: Dict[str, Any] = {"meta": meta, "original": ORIGINAL, "goals": [], "measurements": rec.rows,
                           "correctness": {"checks": [], "passed": False}}
    try:
        if not (root / "dataset_info.pkl").exists():
            t = time.perf_counter()
            res["dataset"] = write_dataset(root, sz)
            log(f"wrote {len(res['dataset']['train_lengths'])}+{len(res['dataset']['val_lengths'])} videos "
                f"({res['dataset']['train_frames']}+{res['dataset']['val_frames']} frames) in "
                f"{time.perf_counter() - t:.1f}s under {root}")
        ctx = Context(root, Path(tmp.name), sz, device, workers)
        t = time.perf_counter()
        ctx.datasets("video")  # faces stored at another size than resize: the face cache is built here, once
        build_s = time.perf_counter() - t
        ctx.datasets("vision")
        res["dataset"] = {**res.get("dataset", {}), "train_windows": len(ctx.datasets("video")["train"]),
                          "face_cache_build_s": build_s,
                          "faces_cached": ctx.datasets("video")["train"].videos[0].faces is not None}
        log(f"datasets (face cache build included: {res['dataset']['faces_cached']}) in {build_s:.1f}s")

        # correctness first: a fast wrong result is worth nothing
        checks = res["correctness"]["checks"]
        for m in models:
            for path in ("video", "vision"):
                r = rec.run("check_logits", lambda m=m, path=path: check_logits(ctx, m, path), model=m, path=path)
                checks.append({"check": "logits fp32 vs cpu fp64", **r})
        r = rec.run("check_checkpoint", lambda: check_checkpoint(ctx, models[0]), model=models[0], path="video")
        checks.append({"check": "checkpoint saved on device resumes on cpu", **r})
        res["correctness"]["passed"] = all(c.get("status") == "ok" and c.get("passed") for c in checks)

        n_loader = 10 if a.tiny else 60
        rec.run("loader", lambda: time_loader(ctx, "video", n_loader), path="video", variant=f"{workers} workers")
        rec.run("loader", lambda: time_loader(ctx, "vision", n_loader), path="vision", variant=f"{workers} workers")
        # per-step operator / kernel / host-sync counts: the launch-bound part of a step
        for m in models:
            for path in ("video", "vision"):
                for padded in (False, True):
                    rec.run("ops", lambda m=m, path=path, padded=padded: count_ops(ctx, m, path, padded=padded),
                            model=m, path=path, variant="fixed bf16, " + ("padded batch" if padded else "no padding"),
                            need_s=5)
        # the whole model compiled for training (CUDA graphs): the first model's vision path early,
        # so that the budget keeps it; the others after the eager measurements
        compiled = [("vision", m, False) for m in models] + [("video", models[0], True)]

        def run_compiled(path: str, m: str, cl: bool) -> None:
            variant = "fixed bf16" + (" channels-last" if cl else "") + " compiled model reduce-overhead"
            if a.tiny or a.no_compile:
                rec.rows.append({"section": "train_step", "model": m, "path": path, "variant": variant,
                                 "status": "skipped", "error": "--tiny (CPU smoke run)" if a.tiny else "--no-compile"})
                return
            rec.run("train_step", lambda: time_train_step(
                ctx, m, path, compat=False, amp_dtype="bfloat16", channels_last=cl, compile_model="reduce-overhead",
                keep=True), model=m, path=path, variant=variant, need_s=90, limit_s=a.compile_limit_s)
            rec.run("train_e2e", lambda: time_train_e2e(
                ctx, m, path, compat=False, amp_dtype="bfloat16", channels_last=cl, kept=True),
                model=m, path=path, variant=variant, need_s=10, limit_s=60)

        run_compiled(*compiled[0])
        rec.run("backbone", lambda: time_backbone(ctx, True, "float16", False, False), model="ir50",
                variant="train-mode fp16")
        rec.run("backbone", lambda: time_backbone(ctx, False, "bfloat16", True, False), model="ir50",
                variant="eval bf16 channels-last")

        # (name, compat, autocast dtype, channels-last); the first is the original's behaviour
        eager = [("compat fp16", True, "float16", False), ("fixed fp16", False, "float16", False),
                 ("fixed fp16 channels-last", False, "float16", True), ("fixed bf16", False, "bfloat16", False),
                 ("fixed bf16 channels-last", False, "bfloat16", True)]
        if a.tiny:  # fp16 convolutions are emulated on a CPU (seconds per step): bf16 only there
            eager = [("compat bf16", True, "bfloat16", False), ("fixed bf16", False, "bfloat16", False),
                     ("fixed bf16 channels-last", False, "bfloat16", True)]
        for m in models:
            for name, compat, dt, cl in eager:
                rec.run("train_step", lambda m=m, compat=compat, dt=dt, cl=cl: time_train_step(
                    ctx, m, "video", compat=compat, amp_dtype=dt, channels_last=cl), model=m, path="video",
                    variant=name, need_s=10)
        for m in models:
            for name, compat, dt, cl in (eager[-1], eager[0]):
                rec.run("train_e2e", lambda m=m, compat=compat, dt=dt, cl=cl: time_train_e2e(
                    ctx, m, "video", compat=compat, amp_dtype=dt, channels_last=cl), model=m, path="video",
                    variant=name, need_s=15)
        for m in models:
            for name, compat, dt, cl in (eager[-1], eager[0]):
                rec.run("eval", lambda m=m, compat=compat, dt=dt, cl=cl: time_eval(
                    ctx, m, "video", compat=compat, amp_dtype=dt, channels_last=cl), model=m, path="video",
                    variant=name, need_s=10)
        for m in models:  # evaluation in large batches (padded to the longest video, masked)
            rec.run("eval", lambda m=m: time_eval(ctx, m, "video", compat=False, amp_dtype="bfloat16",
                                                  channels_last=True, batch=8), model=m, path="video",
                    variant="fixed bf16 channels-last, 8 videos per batch", need_s=10)
        for m in models:
            rec.run("train_step", lambda m=m: time_train_step(ctx, m, "vision", compat=False, amp_dtype="bfloat16",
                                                              channels_last=False), model=m, path="vision",
                    variant="fixed bf16", need_s=5)
            rec.run("train_e2e", lambda m=m: time_train_e2e(ctx, m, "vision", compat=False, amp_dtype="bfloat16",
                                                            channels_last=False), model=m, path="vision",
                    variant="fixed bf16", need_s=10)
            rec.run("eval", lambda m=m: time_eval(ctx, m, "vision", compat=False, amp_dtype="bfloat16",
                                                  channels_last=False), model=m, path="vision",
                    variant="fixed bf16", need_s=5)
        for args in compiled[1:]:
            run_compiled(*args)
        if a.no_compile or a.tiny:
            why = "--tiny (CPU smoke run)" if a.tiny else "--no-compile"
            rec.rows.append({"section": "train_step", "model": models[0], "path": "video",
                             "variant": "fixed bf16 channels-last compiled", "status": "skipped", "error": why})
        else:
            rec.run("backbone", lambda: time_backbone(ctx, False, "bfloat16", True, True), model="ir50",
                    variant="eval bf16 channels-last compiled", need_s=90)
            for m in models:
                rec.run("train_step", lambda m=m: time_train_step(ctx, m, "video", compat=False, amp_dtype="bfloat16",
                                                                  channels_last=True, compile=True),
                        model=m, path="video", variant="fixed bf16 channels-last compiled", need_s=120)
    except Exception as exc:  # set-up failed: still write what there is
        res["fatal"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        res["elapsed_s"] = time.perf_counter() - t_start
        res["goals"] = goals(rec.rows)
        write_json(out / "gpu-bench.json", res)
        write_text(out / "gpu-bench.md", markdown(res))
        tmp.cleanup()
    log(f"wrote {out / 'gpu-bench.json'} and {out / 'gpu-bench.md'} in {res['elapsed_s']:.0f}s; "
        f"correctness passed: {res['correctness']['passed']}")
    return 0 if res["correctness"]["passed"] and "fatal" not in res else 1


if __name__ == "__main__":
    sys.exit(main())
