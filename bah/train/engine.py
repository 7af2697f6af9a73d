"""The training loop and the evaluation pass, shared by every model.

``train_one_epoch`` is the only training loop; ``predict`` runs whole videos (windowed and
stitched for models that need a fixed length, e.g. LFAN) and returns per-video records in
the original's ``prediction-*.pkl`` shape; ``score`` turns them into frame- and video-level
metrics. AMP is one code path: ``autocast`` is a null context when off, and ``step`` uses the
GradScaler only when one is given (fp16); bf16 runs without one.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from bah.core.progress import progress_bar as tqdm  # obeys --no-progress, TQDM_DISABLE, log files

from bah.train.windows import stitch, window_bounds


def amp_dtype_of(device: torch.device, dtype: str) -> torch.dtype:
    """``--amp_dtype``: ``auto`` is bfloat16 where the device has it (no loss scaling needed,
    fp32's exponent range), float16 elsewhere (pre-Ampere GPUs)."""
    if dtype == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    return getattr(torch, dtype)


def autocast(device: torch.device, enabled: bool, dtype: str = "float16"):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype_of(device, dtype))


def make_scaler(device: torch.device, amp: bool, dtype: str) -> Optional[torch.amp.GradScaler]:
    return torch.amp.GradScaler(device.type) if amp and amp_dtype_of(device, dtype) == torch.float16 else None


def step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None, clip_grad: float = 0.0) -> None:
    """backward -> (unscale) -> clip -> step -> update."""
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if clip_grad > 0:
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def to_device(batch: Mapping[str, Any], device: torch.device, transform: Optional[Callable] = None,
              generator: Optional[torch.Generator] = None) -> Dict[str, Any]:
    """Move tensors to ``device`` and run the face transform there (uint8 travels, not floats)."""
    nb = device.type == "cuda"
    inputs = {m: x.to(device, non_blocking=nb) for m, x in batch["inputs"].items()}
    if "video" in inputs and transform is not None and inputs["video"].dtype == torch.uint8:  # else done in workers
        inputs["video"] = transform(inputs["video"], generator=generator)
    out = {k: (v.to(device, non_blocking=nb) if torch.is_tensor(v) else v) for k, v in batch.items() if k != "inputs"}
    out["inputs"] = inputs
    return out


def optimise_backbone(model: torch.nn.Module, channels_last: bool = False, compile: bool = False) -> torch.nn.Module:
    """Channels-last memory format and ``torch.compile`` for the face backbone, in place.

    Only the backbone: it is where nearly all the arithmetic is (IR-50, 3 GMAC per 40 px face),
    its input shape is fixed during training, and it has no data-dependent branches; the temporal
    and fusion parts see a new length per evaluation video and branch on the mask. ``compile``
    uses ``nn.Module.compile`` so parameter names and checkpoints are unchanged."""
    vis = getattr(model, "_visual", None)
    if vis is None:
        return model
    if channels_last:
        vis.to(memory_format=torch.channels_last)
    if compile:
        vis.compile()
    return model


def compiled_for_training(model: torch.nn.Module, mode: str = "off") -> torch.nn.Module:
    """The module the training steps call: ``model`` itself, or ``torch.compile(model)`` (``mode``
    a torch.compile mode) sharing its parameters, buffers and state-dict keys.

    For training only: every window has the same static shape, so the whole forward (and the
    backward through AOTAutograd) compiles once per batch kind (padded or not), and with
    ``reduce-overhead`` each step replays as a CUDA graph instead of ~1,000-2,500 operator calls
    from Python (bench/gpu.py, "Operators per training step"). Evaluation keeps calling the
    eager ``model``: each video has its own length, which would recompile per video."""
    if mode == "off":
        return model
    return torch.compile(model, mode=mode, dynamic=False)


def model_mask(batch: Mapping[str, Any]) -> Optional[torch.Tensor]:
    """The mask for the model, or None when collate saw no padding: a model given a mask asks
    the device whether it is all True (``bool(mask.all())``), which makes the host wait."""
    return None if batch.get("full") else batch["mask"]


def frame_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the frames the mask keeps (all frames, padded duplicates too, in compat).

    The mean over kept frames is a masked sum, not ``logits[mask]``: boolean indexing has a
    data-dependent size and would make the host wait for the device at every step."""
    per_frame = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), reduction="none")
    keep = mask.flatten()
    return torch.where(keep, per_frame, 0.0).sum() / keep.sum().clamp_min(1)


def train_one_epoch(model, optimizer, loader, device, epoch: int, *, scaler=None, amp: bool = False,
                    amp_dtype: str = "float16", transform=None, generator=None, supervision: str = "video_fr_sup",
                    scheduler=None, clip_grad: float = 0.0, progress: bool = True,
                    log_every: int = 50) -> Dict[str, float]:
    """One pass over ``loader``. The loss is summed on the device and read (with the
    non-finite check) every ``log_every`` steps and at the end, so the host never waits for
    the device inside the loop; a non-finite loss still stops the epoch, naming its batch."""
    model.train()
    total = torch.zeros((), dtype=torch.float32, device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first batch with a non-finite loss
    recent_ids: Dict[int, Any] = {}
    n_batches, n_windows, t0 = 0, 0, time.perf_counter()
    key = "global_target" if supervision == "video_global_sup" else "target"
    bar = tqdm(loader, desc=f"train {epoch}", unit="batch", disable=not progress, leave=False)

    def check(i: int) -> float:
        bad = int(first_bad)
        if bad >= 0:
            raise FloatingPointError(f"epoch {epoch}, batch {bad}: loss is not finite "
                                     f"(videos {recent_ids.get(bad, '?')})")
        mean = float(total) / max(n_batches, 1)
        bar.set_postfix(loss=f"{mean:.4f}", win_s=f"{n_windows / (time.perf_counter() - t0):.1f}")
        recent_ids.clear()
        return mean

    for i, batch in enumerate(bar):
        if scheduler is not None and scheduler.per_batch:
            scheduler.step_update(i / max(len(loader), 1))
        recent_ids[i] = batch["video_id"]
        batch = to_device(batch, device, transform, generator)
        # a new step for CUDA-graph replays of a compiled model (only a counter otherwise)
        torch.compiler.cudagraph_mark_step_begin()
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp, amp_dtype):
            out = model(batch["inputs"], mask=model_mask(batch))
        loss = frame_loss(out["logits"], batch[key], batch["mask"])
        step(loss, optimizer, scaler, clip_grad)
        loss = loss.detach()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), i, first_bad)
        total += loss
        n_batches += 1
        n_windows += len(batch["video_id"])
        if n_batches % log_every == 0:
            check(i)
    mean = check(n_batches - 1)
    secs = time.perf_counter() - t0
    return {"loss": mean, "windows": n_windows, "seconds": secs,
            "windows_per_s": n_windows / secs if secs > 0 else 0.0}


def _slice_inputs(inputs: Mapping[str, torch.Tensor], s: int, e: int, length: int) -> Dict[str, torch.Tensor]:
    out = {}
    for m, x in inputs.items():
        w = x[:, s:e]
        if e - s < length:  # repeat the last frame, as the original padded short videos
            w = torch.cat([w, w[:, -1:].expand(-1, length - (e - s), *w.shape[2:])], dim=1)
        out[m] = w
    return out


@torch.inference_mode()
def predict(model, loader, device, *, transform=None, amp: bool = False, amp_dtype: str = "float16",
            fixed_length: Optional[int] = None, hop_length: int = 1, keep_amp_dtype: bool = False,
            progress: bool = True, desc: str = "eval") -> Dict[str, Dict[str, np.ndarray]]:
    """Per video id: ``labels`` (n,), ``logits`` (n,2), ``g_labels`` (n,) over the scored frames.

    Models with a ``fixed_length`` see windows of that length (hop ``hop_length``, tail window,
    overlapping logits averaged); shorter videos are padded by repeating the last frame."""
    model.eval()
    preds: Dict[str, Dict[str, np.ndarray]] = {}
    t0 = time.perf_counter()
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        masks, targets = batch["mask"].cpu().numpy(), batch["target"].cpu().numpy()
        video_targets = batch["video_target"].tolist()
        batch = to_device(batch, device, transform)
        with autocast(device, amp, amp_dtype):
            if fixed_length is None:
                logits = model(batch["inputs"], mask=model_mask(batch))["logits"]
            else:
                logits = _windowed(model, batch, fixed_length, hop_length)
        if not keep_amp_dtype or logits.dtype == torch.bfloat16:
            logits = logits.float()  # numpy has no bfloat16; float32 holds every bf16 value exactly
        logits = logits.cpu().numpy()  # one transfer per batch
        for b, vid in enumerate(batch["video_id"]):
            m = masks[b]
            lab = targets[b][m]
            preds[vid] = {"labels": lab.astype(np.int64), "logits": logits[b][m],
                          "g_labels": np.full(len(lab), int(video_targets[b]), np.int64)}
    preds_time = time.perf_counter() - t0
    for v in preds.values():
        v.setdefault("seconds", preds_time / max(len(preds), 1))
    return preds


def _windowed(model, batch, length: int, hop: int) -> torch.Tensor:
    outs = []
    for b in range(len(batch["video_id"])):
        n = int(batch["mask"][b].sum()) if not batch["mask"][b].all() else batch["mask"].shape[1]
        inputs = {m: x[b:b + 1] for m, x in batch["inputs"].items()}
        bounds = window_bounds(n, length, hop)
        wins = [model(_slice_inputs(inputs, s, e, length), mask=None)["logits"][0, : e - s] for s, e in bounds]
        st = torch.from_numpy(stitch([w.float().cpu().numpy() for w in wins], bounds, n)).to(wins[0].device)
        full = torch.zeros(batch["mask"].shape[1], st.shape[1], device=st.device, dtype=st.dtype)
        full[:n] = st
        outs.append(full)
    return torch.stack(outs)


def mean_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The training loss (``frame_loss``) over every scored frame, in float64: the validation loss."""
    lg = np.asarray(logits, dtype=np.float64)
    top = lg.max(axis=1)
    lse = top + np.log(np.exp(lg - top[:, None]).sum(axis=1))
    return float(np.mean(lse - lg[np.arange(lg.shape[0]), np.asarray(labels, dtype=np.int64)]))


def score(preds: Mapping[str, Mapping[str, np.ndarray]], compat: bool = False) -> Dict[str, Any]:
    """Frame-pooled metrics (and the mean cross-entropy, ``loss``) over every scored frame plus
    video-level metrics per aggregation.

    Returns ``{"frame": {...}, "video": {FRAMES_VOTE: {...}, ...}, "flat": {frame_avgf1: ..., ...}}``."""
    from bah import metrics as met

    ids = [v for v in preds if len(preds[v]["labels"])]
    if not ids:
        raise ValueError("no predictions to score (empty split?)")
    labels = np.concatenate([preds[v]["labels"] for v in ids])
    logits = np.concatenate([np.asarray(preds[v]["logits"]) for v in ids])
    vidx = np.concatenate([np.full(len(preds[v]["labels"]), i, np.int64) for i, v in enumerate(ids)])
    frame = met.frame_metrics(labels, logits=logits, compat=compat)
    frame["loss"] = mean_cross_entropy(logits, labels)
    video = met.video_metrics(vidx, logits, np.array([int(preds[v]["g_labels"][0]) for v in ids]), compat=compat)
    return {"frame": frame, "video": video, "flat": met.flatten_metrics(frame, video)}
