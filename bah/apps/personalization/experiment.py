"""One personalisation experiment: a source run, targets x methods x seeds, results on disk.

Order of work: load the source run (options, weights, normalisation statistics from its
training split), plan the targets (protocol.py), then for every eligible target, method and seed
adapt a fresh copy of the source model on the target's adaptation part and score the evaluation
part. Each (method, target, seed) result is one JSON file under ``<out>/results/``, written
atomically; a rerun skips those whose settings hash matches (an interrupted run resumes). One
failing target is recorded in ``failures.jsonl`` and the loop goes on.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from bah.core.progress import progress_bar

from bah.train.dataset import LABEL, DataError, VideoRecord, WindowDataset, collate, split_records
from bah.core.files import config_hash, write_json, write_jsonl
from bah.metrics import frame_metrics

from .adapters import ADAPTERS, AdaptationData, Adapter, create_adapter
from .protocol import TargetPlan, group_by_participant, plan_targets, select_targets
from .settings import method_params

log = logging.getLogger(__name__)


class SourceRunError(ValueError):
    pass


class Unlabelled(Dataset):
    """A window dataset whose labels are hidden: every label field is -1 (what non-oracle adapters see)."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        s = dict(self.ds[i])
        s["target"] = np.full_like(s["target"], -1)
        s["global_target"] = np.full_like(s["global_target"], -1)
        s["video_target"] = -1
        return s


# --------------------------------------------------------------------------- source run
@dataclass
class SourceRun:
    folder: Path  # holds model.pt + config.yml
    options: Any  # bah.train.options.Options of the run, paths possibly overridden
    dims: List[Tuple[str, Optional[int]]]
    train: WindowDataset  # labelled source windows (normalisation stats attached)
    records: Dict[str, VideoRecord] = field(default_factory=dict)  # target-split videos by id
    source_prior: float = 0.2
    state: Dict[str, torch.Tensor] = field(default_factory=dict)
    model_extra: Dict[str, Any] = field(default_factory=dict)  # e.g. tcn_channels recorded by a small run

    @property
    def stats(self):
        return self.train.stats

    def new_model(self, device: torch.device) -> torch.nn.Module:
        from bah.models.factory import build_model, model_kwargs

        o = self.options
        model = build_model(o.model_name, self.dims, o.compat, **model_kwargs(o), **self.model_extra)
        model.load_state_dict(copy.deepcopy(self.state))
        return model.to(device).eval()


def _run_folder(path: Path) -> Path:
    cands = [path / "best-model", path] if (path / "best-model").is_dir() else [path]
    folder = next((c for c in cands if (c / "model.pt").exists() and (c / "config.yml").exists()), None)
    if folder is None:
        raise SourceRunError(f"--source-run {path}: no model.pt + config.yml (looked in {', '.join(map(str, cands))})")
    return folder


def load_source_run(path: Path, dataset_path: Optional[str] = None, split: str = "test",
                    device: str = "cpu") -> SourceRun:
    """Rebuild the run's options as ``bah evaluate`` does, its model weights, its training split
    (source data and normalisation statistics) and the records of the target split."""
    import yaml

    from bah.train.dataset import load_index
    from bah.models import load_original_state_dict
    from bah.train.options import OptionsError
    from bah.train.saved_run import options_from_run
    from bah.models.factory import build_model, model_kwargs
    from bah.train.trainer import build_datasets, modality_dims

    folder = _run_folder(Path(path))
    cfg = yaml.safe_load((folder / "config.yml").read_text(encoding="utf-8")) or {}
    over: Dict[str, Any] = dict(num_workers=0, verbose=False, device=device)
    if dataset_path:
        over["dataset_path"] = str(dataset_path)
    try:
        o = options_from_run(folder, **over).options
    except OptionsError as exc:
        raise SourceRunError(f"source run {folder}: {exc}") from None
    if not o.dataset_path:
        raise SourceRunError(f"{folder / 'config.yml'}: no dataset_path; give --dataset-path")
    try:
        train = build_datasets(o, splits=("train",))["train"]
    except (DataError, FileNotFoundError, ValueError) as exc:
        raise SourceRunError(f"source run {folder}: cannot load its training data from {o.dataset_path}: {exc}") from None
    dims = modality_dims(train)
    saved = cfg.get("modality_dims") or {}
    bad = {m: (saved[m], d) for m, d in dims if m in saved and saved[m] is not None and int(saved[m]) != int(d)}
    if bad:
        raise SourceRunError(f"source run {folder}: feature dimensions of {o.dataset_path} differ from the run's "
                             f"(modality: (run, data)) {bad}")
    # the trainer's flags do not set TCN widths; a run that recorded them (small runs) is rebuilt with them
    extra = {"tcn_channels": cfg["tcn_channels"]} if cfg.get("tcn_channels") else {}
    model = build_model(o.model_name, dims, o.compat, **model_kwargs(o), **extra)
    try:
        load_original_state_dict(model, folder / "model.pt")
    except (RuntimeError, KeyError, ValueError) as exc:
        raise SourceRunError(f"{folder / 'model.pt'}: does not fit a {o.model_name} on {dims}: {exc}") from None
    index = load_index(Path(o.dataset_path))
    split_dir = Path(o.split_dir) if o.split_dir else None
    try:
        recs = split_records(Path(o.dataset_path), split, split_dir, index)
    except DataError as exc:
        raise SourceRunError(str(exc)) from None
    rates = [float(np.asarray(np.load(r.folder / f"{LABEL}.npy", mmap_mode="r")).mean()) for r in train.videos]
    prior = float(np.clip(np.average(rates, weights=[r.length for r in train.videos]), 0.01, 0.99))
    return SourceRun(folder, o, dims, train, {r.video_id: r for r in recs}, prior,
                     {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, extra)


# --------------------------------------------------------------------------- target data
def label_counts(records: Mapping[str, VideoRecord]) -> Dict[str, Tuple[int, int]]:
    out = {}
    for vid, r in records.items():
        f = r.folder / f"{LABEL}.npy"
        try:
            lab = np.asarray(np.load(f, mmap_mode="r")).reshape(-1) > 0.5
        except (OSError, ValueError) as exc:
            raise DataError(f"video {vid}: cannot read {f} ({exc})") from None
        out[vid] = (int(lab.sum()), int((~lab).sum()))
    return out


def check_target_dims(run: SourceRun, ds: WindowDataset) -> None:
    want = {m: d for m, d in run.dims if d is not None}
    got = {m: int(d) for m, d in ds.dims.items() if m in want}
    bad = {m: (want[m], got[m]) for m in got if got[m] != want[m]}
    if bad:
        v = ds.videos[0]
        raise SourceRunError(f"target video {v.video_id} ({v.folder}): feature dimensions differ from the source "
                             f"run's (modality: (run, target)) {bad}")


class LabelSelector:
    """--select-on-target-labels: keep the snapshot with the best AVGF1 on the LABELLED adaptation
    videos (what the FG-2024 and NRC code do). Results are marked optimistic."""

    def __init__(self, videos: Dataset, device: torch.device, every: int):
        self.videos, self.device, self.every = videos, device, max(1, every)
        self.best: Optional[Tuple[float, int, Dict[str, torch.Tensor]]] = None

    def snapshot(self, model: torch.nn.Module, step: int) -> None:
        preds = predict_videos(model, self.videos, self.device)
        lab = np.concatenate([p["labels"] for p in preds.values()])
        lg = np.concatenate([p["logits"] for p in preds.values()])
        f1 = float(frame_metrics(lab, logits=lg)["avgf1"])
        if self.best is None or f1 > self.best[0]:
            self.best = (f1, step, {k: v.detach().clone() for k, v in model.state_dict().items()})

    def restore(self, model: torch.nn.Module) -> None:
        if self.best is not None:
            model.load_state_dict(self.best[2])


def predict_videos(model: torch.nn.Module, ds: Dataset, device: torch.device) -> Dict[str, Dict[str, np.ndarray]]:
    from bah.train import engine
    from bah.models.factory import fixed_length_of

    loader = DataLoader(ds, batch_size=1, shuffle=False, collate_fn=collate, num_workers=0)
    return engine.predict(model, loader, device, fixed_length=fixed_length_of(model),
                          hop_length=getattr(ds, "hop_length", 1), progress=False)


def target_metrics(preds: Mapping[str, Mapping[str, np.ndarray]]) -> Dict[str, float]:
    """Frame metrics pooled over the evaluation part, plus video AVGF1 from mean frame probabilities."""
    from sklearn.metrics import f1_score

    ids = sorted(preds)
    lab = np.concatenate([preds[v]["labels"] for v in ids])
    lg = np.concatenate([np.asarray(preds[v]["logits"], np.float64) for v in ids])
    fm = frame_metrics(lab, logits=lg)
    vp, vl = [], []
    for v in ids:
        z = np.asarray(preds[v]["logits"], np.float64)
        p1 = np.exp(z[:, 1] - np.logaddexp(z[:, 0], z[:, 1]))
        vp.append(int(p1.mean() > 0.5))
        vl.append(int(preds[v]["labels"].max() > 0))
    return {"avgf1": float(fm["avgf1"]), "ap_legacy": float(fm["ap_legacy"]), "ap": float(fm["ap"]),
            "f1_pos": float(fm["f1_pos"]), "f1_neg": float(fm["f1_neg"]), "positive_rate": float(fm["prevalence"]),
            "n_frames": int(fm["n"]),
            "video_avgf1": float(f1_score(vl, vp, average="macro", labels=[0, 1], zero_division=0))}


# --------------------------------------------------------------------------- one target
def adapt_and_score(run: SourceRun, plan: TargetPlan, adapter: Adapter, seed: int, device: torch.device,
                    window: int, hop: int, select_every: int = 0,
                    source: Optional[Dataset] = None) -> Dict[str, Any]:
    """All folds of one target with one method and one seed; predictions pooled over folds."""
    from bah.train.trainer import seed_everything

    o = run.options
    preds: Dict[str, Dict[str, np.ndarray]] = {}
    history: List[Any] = []
    t0 = time.perf_counter()
    for adapt_ids, eval_ids in plan.folds:
        recs = [run.records[v] for v in adapt_ids]
        mk = lambda rs, train: WindowDataset(rs, o.feature_modalities, window, hop, train=train, stats=run.stats,
                                             compat=o.compat, seed=seed)
        win, whole = mk(recs, True), mk(recs, False)
        check_target_dims(run, whole)
        if not adapter.uses_target_labels:  # labels never reach a non-oracle method
            win, whole = Unlabelled(win), Unlabelled(whole)
        selector = LabelSelector(mk(recs, False), device, select_every) if select_every else None
        seed_everything(seed)
        model = run.new_model(device)
        data = AdaptationData(win, whole, [r.length for r in recs], device, seed, run.source_prior, selector)
        model = adapter.fit(model, data, source if adapter.needs_source else None)
        preds.update(predict_videos(model, mk([run.records[v] for v in eval_ids], False), device))
        history.append({k: v for k, v in adapter.history.items() if k != "loss"})
        if adapter.history.get("loss"):
            history[-1]["final_loss"] = adapter.history["loss"][-1]
        if selector is not None and selector.best is not None:
            history[-1]["selected_step"] = selector.best[1]
    return {"metrics": target_metrics(preds), "seconds": time.perf_counter() - t0, "history": history}


# --------------------------------------------------------------------------- the experiment
def result_path(out: Path, method: str, pid: str, seed: int) -> Path:
    return Path(out) / "results" / method / pid / f"seed-{seed}.json"


def run_experiment(cfg: Any, out: Path, progress: bool = True) -> Dict[str, Any]:
    """Run ``cfg`` (the ``personalize`` section) into ``out``; returns counts and the summary."""
    from .summary import write_outputs

    out = Path(out)
    if not cfg.source_run:
        raise SourceRunError("no source run: give --source-run RUN")
    device = torch.device(cfg.device)
    run = load_source_run(Path(cfg.source_run), cfg.dataset_path or None, cfg.split, cfg.device)
    by_pid = group_by_participant(list(run.records))
    source_pids = set(group_by_participant([v.video_id for v in run.train.videos]))
    pids = select_targets(cfg.targets, list(by_pid), cfg.split)
    overlap = sorted(source_pids & set(pids))
    if overlap:
        raise SourceRunError(f"participant(s) {overlap} are both source (train split) and target ({cfg.split} split)")
    counts = label_counts({v: run.records[v] for p in pids for v in by_pid[p]})
    plans = plan_targets(pids, by_pid, counts, cfg.target_split, cfg.eval_videos, cfg.min_videos, cfg.split_seed)
    write_jsonl(out / "targets.jsonl", [{"pid": p.pid, "excluded": p.excluded, "videos": p.videos,
                                         "adaptation": p.adaptation, "evaluation": p.evaluation} for p in plans])
    for p in plans:
        if p.excluded:
            log.info("target %s excluded: %s", p.pid, p.excluded)
    eligible = [p for p in plans if not p.excluded]
    window = cfg.window_length or run.options.window_length
    hop = cfg.hop_length or run.options.hop_length
    methods = list(dict.fromkeys(["source_only", *cfg.methods]))  # deltas need the source-only reference
    run_id = {"model": str(run.folder / "model.pt"), "size": (run.folder / "model.pt").stat().st_size,
              "mtime": (run.folder / "model.pt").stat().st_mtime_ns, "dataset": str(run.options.dataset_path),
              "window": window, "hop": hop, "split": cfg.target_split, "split_seed": cfg.split_seed,
              "select": cfg.select_on_target_labels}
    failures: List[Dict[str, Any]] = []
    done = skipped = 0
    jobs = [(m, p, s) for m in methods for p in eligible for s in (cfg.seeds if ADAPTERS.get(m).learned else cfg.seeds[:1])]
    bar = progress_bar(jobs, desc="personalize", unit="job", disable=not progress)
    for method, plan, seed in bar:
        params = method_params(cfg, method)
        optimistic = bool(cfg.select_on_target_labels) and ADAPTERS.get(method).learned
        key = config_hash({"run": run_id, "method": method, "params": params.__dict__, "folds": plan.folds,
                           "seed": seed, "optimistic": optimistic})
        dest = result_path(out, method, plan.pid, seed)
        if dest.exists():
            try:
                import json

                if json.loads(dest.read_text(encoding="utf-8")).get("key") == key:
                    skipped += 1
                    continue
            except ValueError:
                pass  # unreadable: recompute
        bar.set_postfix(method=method, target=plan.pid, seed=seed)
        try:
            adapter = create_adapter(method, getattr(cfg, method) or {})
            res = adapt_and_score(run, plan, adapter, seed, device, window, hop,
                                  cfg.select_every if optimistic else 0, run.train)
        except Exception as exc:  # one bad target never stops the others
            log.error("target %s, method %s, seed %d failed: %s", plan.pid, method, seed, exc)
            failures.append({"pid": plan.pid, "method": method, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
            continue
        write_json(dest, {"key": key, "method": method, "pid": plan.pid, "seed": seed, "split": cfg.target_split,
                          "optimistic": optimistic, "adaptation": plan.adaptation, "evaluation": plan.evaluation,
                          **res})
        done += 1
    write_jsonl(out / "failures.jsonl", failures)
    summary = write_outputs(out, plans, methods, cfg)
    log.info("personalisation: %d results computed, %d reused, %d failed, %d/%d targets eligible -> %s",
             done, skipped, len(failures), len(eligible), len(plans), out)
    return {"computed": done, "reused": skipped, "failures": failures, "summary": summary, "plans": plans}
