"""The epoch driver: datasets, model, loaders, the train/validate loop over epochs with
checkpoints and early stopping, and evaluation of a saved run. The per-step loop itself is
``bah.train.engine``; the command-line entry points are ``bah.train.cli``."""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from bah.train import engine, face_cache, preemption, validation
from bah.train.augmentation import FaceTransform
from bah.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from bah.train.dataset import EpochShuffle, WindowDataset, collate, load_index, split_records, subsample
from bah.train.face_cache import FaceCache
from bah.train.distributed import DistInfo, all_gather_objects, barrier, init_distributed, job_cpus, shutdown
from bah.train.early_stopping import EarlyStopping
from bah.train.normalization import load_or_compute_stats
from bah.train.optim import create_optimizer, create_scheduler, optimizer_kwargs, scheduler_kwargs
from bah.metrics import (DECISION_NAME, VideoDecision, fit_video_decision, flatten_metrics, predictions_to_arrays,
                         to_original_keys, video_aggregate, video_metrics)
from bah.metrics.video import THRESHOLD_METRICS
from bah.train.options import EVAL_METRICS, Options, OptionsError, aggregation_of, selection_key
from bah.models.factory import build_model, fixed_length_of, load_pretrained, model_kwargs
from bah.train.run_folder import RunFolder, load_video_decision, run_dir

log = logging.getLogger("bah.train")


# --------------------------------------------------------------------------- data
def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # benchmark: cudnn times the candidate convolution algorithms once per shape and keeps the
    # fastest, which may differ between runs; so only when determinism is not asked for.
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def build_datasets(o: Options, splits: Sequence[str] = ("train", "val", "test"),
                   dataset_path: Optional[str] = None, faces_in_workers: bool = False) -> Dict[str, WindowDataset]:
    """``faces_in_workers``: the face transform runs in the loader workers (CPU-only runs,
    where the training process has no device to hand it to)."""
    root = Path(dataset_path or o.dataset_path)
    index = load_index(root)
    split_dir = Path(o.split_dir) if o.split_dir else None
    pct = {"train": o.train_p, "val": o.valid_p, "test": o.test_p}
    recs = {s: subsample(split_records(root, s, split_dir, index), pct[s], o.seed)
            for s in set(splits) | set(o.stats_splits)}
    feats = [m for m in o.feature_modalities if m != "video"]
    stats = {}
    if feats and o.calc_mean_std:
        folders = [r.folder for s in o.stats_splits for r in recs[s]]
        stats = load_or_compute_stats(folders, feats, Path(o.stats_cache or root),
                                      {"compat": o.compat, "splits": o.stats_splits}, progress=o.verbose)
    if "video" in o.feature_modalities and str(o.face_cache).lower() != "off":
        cache = FaceCache(Path(o.face_cache or Path(o.stats_cache or root) / "face-cache"), o.face_resize, o.compat)
        cached = face_cache.prepare(cache, [r.folder / "video.npy" for s in splits for r in recs[s]],
                                    workers=min(o.num_workers, job_cpus()), progress=o.verbose,
                                    strict=bool(o.face_cache))
        recs = {s: [replace(r, faces=cached.get(r.folder / "video.npy")) for r in rs] for s, rs in recs.items()}
    out = {}
    for s in splits:
        tf = (FaceTransform(o.face_resize, o.face_crop, train=(s == "train"), pil_exact=o.compat)
              if faces_in_workers and "video" in o.feature_modalities else None)
        out[s] = WindowDataset(recs[s], o.feature_modalities, o.window_length, o.hop_length, train=(s == "train"),
                               stats=stats, compat=o.compat, seed=o.seed, face_transform=tf)
    return out


def modality_dims(ds: WindowDataset) -> List[Tuple[str, Optional[int]]]:
    return [(m, None if m == "video" else int(ds.dims[m])) for m in ds.modalities]


# --------------------------------------------------------------------------- backbone release
def backbone_groups(model: torch.nn.Module, count: int) -> List[List[torch.nn.Parameter]]:
    """The visual backbone's parameters in ``count`` groups, last layers first (released first)."""
    vis = getattr(model, "_visual", None) or getattr(model, "backbone", None)
    if vis is None or count < 1:
        return []
    params = list(vis.parameters())
    size = math.ceil(len(params) / count)
    chunks = [params[i:i + size] for i in range(0, len(params), size)]
    return list(reversed(chunks))[:count]


def release_backbone(model, optimizer, o: Options, epoch: int, released: int) -> int:
    """Gradual release: at each ``--opt__milestone`` epoch (> 0) one more backbone group trains."""
    if o.opt__gradual_release <= 0:
        return released
    target = sum(1 for m in o.opt__milestone if 0 < m <= epoch)
    groups = backbone_groups(model, o.opt__release_count)
    while released < min(target, len(groups)):
        for p in groups[released]:
            p.requires_grad_(True)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.add_param_group({"params": groups[released], "weight_decay": o.opt__weight_decay, "lr": lr,
                                   "initial_lr": optimizer.param_groups[0].get("initial_lr", lr)})
        released += 1
        log.info("epoch %d: released backbone group %d/%d", epoch, released, len(groups))
    return released


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """DDP around ``model`` (or the model itself in one process).

    DDP all-reduces only the parameters that required a gradient when it was built, so the
    trainer builds a new wrapper each time backbone groups are released (:func:`release_backbone`);
    the ranks' weights are equal at that point (every earlier step was all-reduced), so the
    broadcast of the new wrapper changes nothing.
    """
    if not info.distributed:
        return model
    # static_graph: every step uses the same parameters (CAN's dead conv_c and JMT/MT's unused
    # text branch never get a gradient), so DDP finds the unused ones once, in the first step,
    # instead of walking the autograd graph every step (find_unused_parameters); a release of
    # backbone groups builds a new wrapper, which finds them again. gradient_as_bucket_view: the
    # gradients live in the all-reduce buckets (no copy in and out of them each step).
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
        static_graph=True, gradient_as_bucket_view=True)


# --------------------------------------------------------------------------- loaders
def make_loader(ds: WindowDataset, batch: int, train: bool, o: Options, info: DistInfo, epoch_seed: int = 0):
    """Training: shuffled per epoch by ``loader.sampler.set_epoch``; build it once, so that
    persistent workers live through the run. Workers: ``--num_workers``, at most the CPUs the
    job has; batches page-locked on CUDA for asynchronous copies."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    workers = min(o.num_workers, job_cpus())
    kw = dict(batch_size=batch, collate_fn=collate, num_workers=workers,
              pin_memory=info.device.type == "cuda" and o.pin_memory,
              persistent_workers=workers > 0 and o.persistent_workers)
    if workers > 0:
        kw["prefetch_factor"] = 4
    if train:
        if info.distributed:
            sampler = DistributedSampler(ds, info.world_size, info.rank, shuffle=True, seed=epoch_seed)
        else:
            sampler = EpochShuffle(len(ds), epoch_seed)
        return DataLoader(ds, sampler=sampler, **kw)
    # evaluation: each rank takes every world_size-th video, results are gathered
    idx = list(range(info.rank, len(ds), info.world_size))
    return DataLoader(Subset(ds, idx), shuffle=False, **kw)


def gather_predictions(preds: Dict[str, Any], info: DistInfo) -> Dict[str, Any]:
    merged: Dict[str, Any] = {}
    for part in all_gather_objects(preds, info):
        merged.update(part)
    return merged


# --------------------------------------------------------------------------- training
@dataclass
class TrainState:
    epoch: int = 0
    best_metric: Optional[float] = None
    best_epoch: int = -1
    released: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)
    decision: Optional[VideoDecision] = None  # the video decision fitted at the best epoch


def select_key(o: Options) -> str:
    return selection_key(o.effective_eval_metric)


# --------------------------------------------------------------------------- video decision
def _video_arrays(preds: Mapping[str, Mapping[str, Any]]) -> Dict[str, Any]:
    return predictions_to_arrays({v: p for v, p in preds.items() if len(p["labels"])})


def fit_decision(preds: Mapping[str, Mapping[str, Any]], o: Options, split: str = "val") -> VideoDecision:
    """The run's video decision fitted on ``preds`` (validation): the --case_best_model score
    against the threshold of ``bah.metrics.fit_video_decision``, for the --eval_metric when it is a
    video metric that depends on a threshold, else AVGF1."""
    a = _video_arrays(preds)
    how = aggregation_of(o.case_best_model)
    vs = video_aggregate(a["video_idx"], a["logits"].astype(np.float64), a["labels_video"], how=how, compat=o.compat)
    metric = EVAL_METRICS[o.effective_eval_metric]
    return fit_video_decision(vs.label, vs.score, how, metric=metric if metric in THRESHOLD_METRICS else "avgf1",
                              fitted_on=split)


def decide_videos(preds: Mapping[str, Mapping[str, Any]], decision: VideoDecision,
                  compat: bool = False) -> Dict[str, Dict[str, Any]]:
    """Per video id: the stored rule's ``score`` and ``ah`` decision (what ``bah predict`` says)."""
    a = _video_arrays(preds)
    vs = video_aggregate(a["video_idx"], a["logits"].astype(np.float64), a["labels_video"], how=decision.aggregation,
                         compat=compat)
    return {a["video_ids"][int(v)]: {"score": float(sc), "ah": int(d), "label": int(lab)}
            for v, sc, d, lab in zip(vs.video, vs.score, decision.decide(vs.score), vs.label)}


def score_split(preds: Mapping[str, Mapping[str, Any]], o: Options,
                decision: Optional[VideoDecision]) -> Dict[str, Any]:
    """``engine.score`` plus, with a decision, its video metrics (``video[DECISION]`` and
    ``flat["video_decision_<metric>"]``)."""
    scores = engine.score(preds, compat=o.compat)
    if decision is not None:
        a = _video_arrays(preds)
        d = video_metrics(a["video_idx"], a["logits"].astype(np.float64), a["labels_video"], hows=(),
                          compat=o.compat, decision=decision)[DECISION_NAME]
        scores["video"][DECISION_NAME] = d
        scores["flat"].update(flatten_metrics(video={DECISION_NAME: d}))
    return scores


def train(o: Options, argv: Sequence[str] = (), prog: str = "python main.py") -> Dict[str, Any]:
    """Train as the options say; returns the test scores (flat) and the run folder."""
    info = init_distributed(o.device)
    seed_everything(o.seed, o.deterministic)
    exp_id = o.exp_id or preemption.default_exp_id() or time.strftime("%Y-%m-%d_%H-%M-%S")
    from bah.train.distributed import broadcast_object

    exp_id = broadcast_object(exp_id, info)
    validation.check_before_run(o, info)  # before the run folder exists
    folder = run_dir(Path(o.output_root), o.dataset_name, o.fold_to_run, exp_id)
    resume = resume_check(o, folder)
    run = RunFolder.open_for_training(folder, resume, o.force, write=info.is_main)
    run.setup_logging(verbose=o.verbose)
    log.info("run folder %s (world size %d, device %s)", run.path, info.world_size, info.device)
    data = build_datasets(o, faces_in_workers=info.device.type == "cpu" and not info.distributed)
    dims = modality_dims(data["train"])
    seed_everything(o.seed, o.deterministic)  # model init independent of data-loading RNG use
    model = build_model(o.model_name, dims, o.compat, **model_kwargs(o)).to(info.device)
    engine.optimise_backbone(model, channels_last=o.channels_last and info.device.type == "cuda", compile=o.compile)
    if o.use_pretrained_w:
        load_pretrained(model, o)
    base_model = model
    fixed = fixed_length_of(model)
    effective = {"effective_lr": o.effective_lr, "effective_eval_metric": o.effective_eval_metric,
                 "exp_id": exp_id, "outd": str(run.path), "world_size": info.world_size,
                 "modality_dims": {m: d for m, d in dims}, "n_videos": {s: len(d.videos) for s, d in data.items()},
                 "n_train_windows": len(data["train"]), "t0": time.strftime("%Y-%m-%d %H:%M:%S")}
    run.save_config(o.to_dict(), effective)
    run.save_preprocessing(Path(o.dataset_path), {m: data["train"].dims.get(m) for m in data["train"].modalities},
                           data["train"].stats, o.compat, o.stats_splits)
    run.save_cmd(list(argv), prog)
    optimizer = create_optimizer(model, **optimizer_kwargs(o))
    scheduler = create_scheduler(optimizer, **scheduler_kwargs(o))
    scaler = engine.make_scaler(info.device, o.amp, o.amp_dtype)
    stopper = EarlyStopping(o.early_stopping, o.min_num_epochs, metric=select_key(o), ties_improve=o.compat)
    st = TrainState()
    if resume and run.last.exists():
        ck = load_checkpoint(run.last)
        st = TrainState(ck["epoch"] + 1, ck["best_metric"], ck["best_epoch"], 0, ck["history"],
                        VideoDecision.from_dict(ck["video_decision"]) if ck.get("video_decision") else None)
        st.released = release_backbone(model, optimizer, o, ck["epoch"], 0)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["lr_scheduler"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        stopper.load_state_dict(ck["early_stopping"])
        set_rng_state(ck.get("rng"))
        if ck.get("stopped"):  # killed between the early-stopping epoch and the test: only the test is left
            st.epoch = o.num_epochs
        log.info("resumed from %s at epoch %d (best %s at epoch %d)", run.last, st.epoch, st.best_metric, st.best_epoch)
    model = wrap_ddp(model, info)
    train_model = engine.compiled_for_training(model, o.compile_model)
    train_tf = FaceTransform(o.face_resize, o.face_crop, train=True, pil_exact=o.compat)
    eval_tf = FaceTransform(o.face_resize, o.face_crop, train=False, pil_exact=o.compat)
    key = select_key(o)
    best_weights = None
    if o.opt__load_best_at_each_epoch and run.best.exists():
        best_weights = load_checkpoint(run.best)["model"]
    val_loader = make_loader(data["val"], o.eval_batch_size, False, o, info)
    loader = preemption.guard(make_loader(data["train"], o.train_batch_size, True, o, info, o.seed), info)
    for epoch in range(st.epoch, o.num_epochs):
        # every epoch draws from seed + epoch: a resumed run replays exactly the same batches
        seed_everything(o.seed + epoch, o.deterministic)
        loader.sampler.set_epoch(epoch)
        gen = torch.Generator(device=info.device).manual_seed(o.seed + epoch + 1_000_003 * (info.rank + 1))
        released = release_backbone(base_model, optimizer, o, epoch, st.released)
        if released != st.released:
            stopper.reset_patience()
            st.released = released
            if info.distributed:  # the released parameters must be all-reduced too
                model = None  # the old wrapper and its gradient buckets go before the new ones are made
                model = wrap_ddp(base_model, info)
                train_model = engine.compiled_for_training(model, o.compile_model)
        lr = optimizer.param_groups[0]["lr"]
        tr = engine.train_one_epoch(train_model, optimizer, loader, info.device, epoch, scaler=scaler, amp=o.amp,
                                    amp_dtype=o.amp_dtype, transform=train_tf, generator=gen,
                                    supervision=o.train_supervision_type, scheduler=scheduler,
                                    clip_grad=o.opt__clip_grad, progress=o.verbose and info.is_main,
                                    log_every=o.log_every)
        losses = all_gather_objects(tr, info)
        t_eval = time.perf_counter()
        preds = gather_predictions(engine.predict(base_model, val_loader, info.device, transform=eval_tf, amp=o.amp,
                                                  amp_dtype=o.amp_dtype, fixed_length=fixed, hop_length=o.hop_length,
                                                  keep_amp_dtype=o.compat, progress=o.verbose and info.is_main,
                                                  desc=f"val {epoch}"), info)
        decision = fit_decision(preds, o)
        val = score_split(preds, o, decision)
        value = float(val["flat"][key])
        scheduler.step(value)
        should_stop = stopper.step(epoch, value)
        improved = stopper.improved
        if improved:
            st.best_metric, st.best_epoch, st.decision = value, epoch, decision
            if o.opt__load_best_at_each_epoch:
                best_weights = {k: v.detach().clone() for k, v in base_model.state_dict().items()}
        elif o.opt__load_best_at_each_epoch and best_weights is not None:
            # the original's intent: an epoch that does not improve is undone, training goes on from the best
            base_model.load_state_dict(best_weights)
            log.info("epoch %d did not improve: back to the weights of epoch %d", epoch, st.best_epoch)
        row = {"epoch": epoch, "lr": lr, "train_loss": float(np.mean([t["loss"] for t in losses])),
               "train_windows": sum(t["windows"] for t in losses), "train_seconds": tr["seconds"],
               "train_windows_per_s": sum(t["windows_per_s"] for t in losses), "val_loss": val["flat"]["frame_loss"],
               "val_seconds": time.perf_counter() - t_eval,
               **{f"val_{k}": v for k, v in val["flat"].items()}, "val_video_threshold": decision.threshold,
               "best_epoch": st.best_epoch}
        st.history.append(row)
        log.info("epoch %d: loss %.4f lr %.3g | val loss %.4f %s %.4f (best %.4f @ %d) avgf1 %.4f | %.1f windows/s",
                 epoch, row["train_loss"], lr, row["val_loss"], o.effective_eval_metric, value,
                 st.best_metric if st.best_metric is not None else float("nan"),
                 st.best_epoch, val["flat"].get("frame_avgf1", float("nan")), row["train_windows_per_s"])
        ck = {"model": base_model.state_dict(), "optimizer": optimizer.state_dict(),
              "lr_scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
              "epoch": epoch, "best_metric": st.best_metric, "best_epoch": st.best_epoch,
              "early_stopping": stopper.state_dict(), "rng": rng_state(), "history": st.history,
              "video_decision": st.decision.to_dict() if st.decision else None,
              "options": {**o.to_dict(), **effective}, "stopped": should_stop}
        if run.write:
            if improved:
                save_checkpoint(run.best, ck)
                run.save_video_decision(decision)
                run.save_predictions("val", preds)
                run.save_perf("val", o.dataset_name, val, {"epoch": epoch})
            save_checkpoint(run.last, ck)
            run.save_metrics(st.history)
        barrier(info)
        if should_stop:
            log.info("early stopping at epoch %d (no improvement for %d epochs)", epoch, o.early_stopping)
            break
        preemption.stop_point(info, epoch)
    # test once, on the selected model
    if run.best.exists() or info.distributed:
        barrier(info)
        base_model.load_state_dict(load_checkpoint(run.best)["model"])
    test_loader = make_loader(data["test"], o.eval_batch_size, False, o, info)
    preds = gather_predictions(engine.predict(base_model, test_loader, info.device, transform=eval_tf, amp=o.amp,
                                              amp_dtype=o.amp_dtype, fixed_length=fixed, hop_length=o.hop_length,
                                              keep_amp_dtype=o.compat, progress=o.verbose and info.is_main,
                                              desc="test"), info)
    test = score_split(preds, o, st.decision)
    decision_record = st.decision.to_dict() if st.decision else None
    if run.write:
        run.save_predictions("test", preds)
        run.save_perf("test", o.dataset_name, test, {"best_epoch": st.best_epoch, "video_decision": decision_record})
        save_best_model(run.path / "best-model", base_model, {**o.to_dict(), **effective})
        run.save_video_decision(st.decision, run.path / "best-model")
        run.save_config(o.to_dict(), {**effective, "best_epoch": st.best_epoch, "video_decision": decision_record,
                                      "tend": time.strftime("%Y-%m-%d %H:%M:%S")})
        if o.save_plot:
            run.save_plots(st.history, preds, "test")
        run.mark_passed()
    log.info("test (best epoch %d): AVGF1 %.4f AP_POS %.4f", st.best_epoch, test["flat"]["frame_avgf1"],
             test["flat"].get("frame_ap_legacy", float("nan")))
    barrier(info)
    shutdown(info)
    return {"run": run.path, "test": test["flat"], "best_epoch": st.best_epoch, "history": st.history,
            "video_decision": st.decision}


def resume_check(o: Options, path: Path) -> bool:
    """Whether this run continues from ``last.pth``; refuses changed options before anything is written."""
    resume = preemption.wants_resume(o.resume, RunFolder(path).last) and not o.force
    if resume:
        preemption.check_resume(path / "config.yml", o.to_dict())
    return resume


def save_best_model(folder: Path, model: torch.nn.Module, config: Mapping[str, Any]) -> None:
    """The original's release layout: best-model/model.pt (state dict) + config.yml."""
    from bah.core.files import atomic_path, write_yaml

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    write_yaml(folder / "config.yml", dict(config))


# --------------------------------------------------------------------------- evaluation mode
def evaluate_run(o: Options) -> Dict[str, Any]:
    """Evaluate a saved run (ours, a released ``best-model/`` folder, or a run folder of the
    original trainer) on ``--eval_set``; options come from :func:`bah.train.saved_run.options_from_run`."""
    from bah.models.checkpoint import VISUAL_PREFIX, read_state_dict, tcn_widths_of
    from bah.train.saved_run import backbone_source, log_taken, options_from_run, weights_need_backbone

    fd = Path(o.fd_exp)
    saved = options_from_run(fd, o, load_path=None)
    so, folder = saved.options, saved.folder
    info = init_distributed(so.device)
    seed_everything(so.seed)
    if not so.dataset_path:
        raise OptionsError(f"--dataset_path: no dataset folder for the evaluation of {folder} (none on the command "
                           f"line nor in its config.yml)")
    ds = build_datasets(so, splits=(so.eval_set,))[so.eval_set]
    if so.eval_set == "train":  # score whole training videos, not windows
        ds = WindowDataset(ds.videos, so.feature_modalities, so.window_length, so.hop_length, train=False,
                           stats=ds.stats, compat=so.compat, seed=so.seed)
    dims = modality_dims(ds)
    saved_sd, _ = read_state_dict(folder / "model.pt")
    widths = tcn_widths_of(saved_sd)  # the widths the run trained with (the original keeps them in code)
    model = build_model(so.model_name, dims, so.compat, **model_kwargs(so), tcn_channels=widths)
    if weights_need_backbone(list(model.state_dict()), list(saved_sd), VISUAL_PREFIX):
        load_path, where = backbone_source(saved)
        if not load_path:
            raise OptionsError(f"{folder / 'model.pt'}: has no face-backbone weights ({VISUAL_PREFIX}*); give "
                               f"--load_path DIR holding res50_ir_0.887.pth")
        log.info("%s holds no face backbone: taking it from %s (%s)", folder / "model.pt", load_path, where)
        so = options_from_run(fd, o, load_path=load_path).options
        model = build_model(so.model_name, dims, so.compat, **model_kwargs(so), tcn_channels=widths)
        from bah.models import load_original_state_dict

        load_original_state_dict(model, saved_sd, strict=False)
    else:
        from bah.models import load_original_state_dict

        load_original_state_dict(model, folder / "model.pt")
    if info.is_main:
        log_taken(saved)
    model.to(info.device)
    engine.optimise_backbone(model, channels_last=so.channels_last and info.device.type == "cuda", compile=so.compile)
    loader = make_loader(ds, so.eval_batch_size, False, so, info)
    preds = gather_predictions(engine.predict(model, loader, info.device,
                                              transform=FaceTransform(so.face_resize, so.face_crop, train=False,
                                                                        pil_exact=so.compat),
                                              amp=so.amp, amp_dtype=so.amp_dtype, fixed_length=fixed_length_of(model),
                                              hop_length=so.hop_length, keep_amp_dtype=so.compat,
                                              progress=so.verbose and info.is_main, desc=so.eval_set), info)
    decision = load_video_decision(folder)
    scores = score_split(preds, so, decision)
    out = fd / f"eval-{so.eval_set}"
    run = RunFolder(out, write=info.is_main)
    if run.write:
        out.mkdir(parents=True, exist_ok=True)
        run.setup_logging(f"log-eval-{so.eval_set}.txt", verbose=so.verbose)
        run.save_predictions(so.eval_set, preds)
        run.save_perf(so.eval_set, so.dataset_name, scores,
                      {"case_best_model": so.case_best_model,
                       "perfs_case_best_model": to_original_keys(scores["video"][so.case_best_model]),
                       "video_decision": decision.to_dict() if decision else None,
                       "video_decisions": decide_videos(preds, decision, so.compat) if decision else None,
                       "original_run": saved.original, "compat": so.compat})
        run.save_config(so.to_dict(), {"evaluated": str(folder), "taken_from_run": sorted(saved.taken)})
        run.save_plots([], preds, so.eval_set)
    frame = scores["flat"]
    log.info("%s on %s: AVGF1 %.4f AP_POS %.4f (%d videos)%s", folder, so.eval_set, frame["frame_avgf1"],
             frame.get("frame_ap_legacy", float("nan")), len(preds),
             f"; video decision ({decision.rule_text()}): AVGF1 {frame['video_decision_avgf1']:.4f}" if decision else "")
    shutdown(info)
    return {"dir": out, "scores": scores, "options": so, "decision": decision, "preds": preds}


# --------------------------------------------------------------------------- entry points
