"""One video-level run: load the table, run the protocol for every candidate learner and seed,
select on the selection split, calibrate the threshold, score, and write the run folder.

Run folder:
- ``video-run.json``: recipe, learner, features, protocol, seeds, threshold, calibration mode,
  selection metrics (per seed, mean ± std over seeds, seed ensemble), test metrics when the
  test split is labelled and was not used for selection;
- ``predictions-<val|oof>.csv`` and ``predictions-test.csv``: ``video_id,p1,label`` with the
  seed-ensemble probability and the label predicted at the stored threshold;
- ``threshold-curve.png``: macro F1 vs threshold on the selection split, threshold marked;
- ``config.yaml`` (the resolved configuration) and ``failures.json`` (videos that did not load).
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from bah.core.files import write_json, write_text
from bah.data import Release
from bah.metrics.frame import frame_metrics
from bah.metrics.plots import plot_threshold_curve

from .calibration import CALIBRATIONS, GRID, SMOOTH_WINDOW, TOLERANCE, calibrate, f1_curve, plateau_threshold, smooth
from .features import VideoTable, load_video_table
from .protocol import ProtocolRun, run_protocol
from .report import RUN_FILE, SelectionLeakError, require_clean_selection
from .settings import ChallengeConfig, candidate_specs

__all__ = ["METRIC_KEYS", "score", "mean_std", "fit_video", "evaluate_candidate"]

log = logging.getLogger("bah.apps.challenge")

METRIC_KEYS = ("avgf1", "f1_pos", "f1_neg", "acc", "ap", "auc")


def score(labels: np.ndarray, probs: np.ndarray, threshold: float) -> Dict[str, float]:
    """Video metrics of ``p1 >= threshold`` (bah.metrics), plus the positive rate."""
    pred = (np.asarray(probs) >= threshold).astype(np.int64)
    m = frame_metrics(np.asarray(labels, dtype=np.int64), probs=np.asarray(probs, dtype=np.float64), preds=pred)
    out = {k: float(m[k]) for k in METRIC_KEYS}
    out["positive_rate"] = float(pred.mean())
    return out


def mean_std(rows: Sequence[Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    """Mean and sample std (ddof=1; 0 for one seed) of each metric over seeds."""
    keys = list(rows[0])
    arr = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in keys}
    return {"mean": {k: float(np.mean(v)) for k, v in arr.items()},
            "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in arr.items()}}


def evaluate_candidate(table: VideoTable, pr: ProtocolRun, mode: str) -> Dict[str, Any]:
    """Thresholds and metrics of one protocol run: per seed (its own threshold) and the ensemble."""
    y_sel = table.labels[pr.selection_rows]
    base_rate = float(table.labels[pr.train_rows].mean())
    per_seed, thresholds = [], []
    for s in pr.seeds:
        t = calibrate(mode, s.selection, y_sel, base_rate)
        thresholds.append(t)
        per_seed.append(score(y_sel, s.selection, t))
    threshold = calibrate(mode, pr.selection_probs, y_sel, base_rate)
    return {"threshold": threshold, "seed_thresholds": thresholds, "base_rate": base_rate,
            "selection": {"per_seed": per_seed, **mean_std(per_seed),
                          "ensemble": score(y_sel, pr.selection_probs, threshold)}}


def _test_metrics(table: VideoTable, pr: ProtocolRun, ev: Mapping[str, Any]) -> Dict[str, Any]:
    y = table.labels[pr.test_rows]
    if len(y) == 0:
        return {}
    if (y < 0).any():
        return {"unlabelled": int(len(y))}
    per_seed = [score(y, s.test, t) for s, t in zip(pr.seeds, ev["seed_thresholds"])]
    return {"per_seed": per_seed, **mean_std(per_seed), "ensemble": score(y, pr.test_probs, ev["threshold"])}


def _predictions_csv(ids: Sequence[str], probs: np.ndarray, threshold: float) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["video_id", "p1", "label"])
    for vid, p in zip(ids, probs):
        w.writerow([vid, repr(float(p)), int(p >= threshold)])
    return buf.getvalue()


def fit_video(cfg: ChallengeConfig, data_root: Path, run_dir: Path, source: Optional[Path] = None) -> Dict[str, Any]:
    """Fit, select, calibrate and write one run; returns the run record (``video-run.json``)."""
    release = Release(data_root)
    splits = [s for s in ("train", "val", "test") if s in release.split_files]
    table, failures = load_video_table(release, splits, cfg.features, cfg.work, cfg.text_source, cfg.window_rule)
    for f in failures:
        log.warning("left out %s: %s", f.video_id, f.reason)
    log.info("loaded %d videos (%s); %d failed", len(table),
             ", ".join(f"{s} {len(table.rows(s))}" for s in splits), len(failures))

    cal = CALIBRATIONS.get(cfg.calibration)
    results = []
    for spec in candidate_specs(cfg):
        pr = run_protocol(cfg.protocol, table, spec, cfg.seeds, cfg.folds, cfg.fold_seed, cfg.select_on)
        ev = evaluate_candidate(table, pr, cfg.calibration)
        log.info("candidate %s: %s macro F1 %.4f (ensemble, threshold %.4f)", spec, pr.selection_split,
                 ev["selection"]["ensemble"]["avgf1"], ev["threshold"])
        results.append((spec, pr, ev))
    # ties keep the earlier candidate: the recipe's order states its preference
    best = max(range(len(results)), key=lambda i: (results[i][2]["selection"]["ensemble"]["avgf1"], -i))
    spec, pr, ev = results[best]

    touches_test = pr.selection_split == "test" or bool(np.intersect1d(pr.selection_rows, pr.test_rows).size)
    run: Dict[str, Any] = {
        "kind": "bah video run", "schema": 1,
        "name": cfg.name,
        "recipe": {"name": cfg.name, "mirrors": cfg.mirrors, "weights": list(cfg.weights),
                   "config": str(source) if source else None},
        "learner": spec,
        "candidates": [{"learner": s, "selection_avgf1": e["selection"]["ensemble"]["avgf1"],
                        "threshold": e["threshold"]} for s, _, e in results],
        "features": list(cfg.features), "text_source": cfg.text_source,
        "window_rule": {"mode": cfg.window_rule.mode, "min_fraction": cfg.window_rule.min_fraction},
        "protocol": cfg.protocol, "folds": cfg.folds if cfg.protocol == "challenge" else None,
        "fold_seed": cfg.fold_seed, "seeds": list(cfg.seeds),
        "threshold": ev["threshold"],
        "calibration": {"mode": cal.name, "optimistic": cal.optimistic or touches_test, "description": cal.description,
                        "seed_thresholds": ev["seed_thresholds"], "base_rate": ev["base_rate"]},
        "selection": {"split": pr.selection_split, "n": int(len(pr.selection_rows)), "touches_test": touches_test},
        "splits": {s: int(len(table.rows(s))) for s in splits},
        "metrics": {"selection": ev["selection"]},
        "failures": [{"video_id": f.video_id, "reason": f.reason} for f in failures],
    }
    test = _test_metrics(table, pr, ev)
    try:
        require_clean_selection(run)
        run["metrics"]["test"] = test
    except SelectionLeakError as exc:
        run["metrics"]["test"] = {"refused": str(exc)}

    run_dir = Path(run_dir)
    sel_name = f"predictions-{pr.selection_split}.csv"
    write_text(run_dir / sel_name, _predictions_csv([table.ids[i] for i in pr.selection_rows],
                                                    pr.selection_probs, ev["threshold"]))
    run["predictions"] = {"selection": sel_name}
    if len(pr.test_rows):
        write_text(run_dir / "predictions-test.csv", _predictions_csv([table.ids[i] for i in pr.test_rows],
                                                                      pr.test_probs, ev["threshold"]))
        run["predictions"]["test"] = "predictions-test.csv"
    _curve(table, pr, ev, cfg.calibration, run_dir / "threshold-curve.png", run)
    write_json(run_dir / "failures.json", run["failures"])
    write_json(run_dir / RUN_FILE, run)
    return run


def _curve(table: VideoTable, pr: ProtocolRun, ev: Mapping[str, Any], mode: str, dest: Path,
           run: Dict[str, Any]) -> None:
    y = table.labels[pr.selection_rows]
    curve = f1_curve(y, pr.selection_probs)
    band = None
    if mode == "plateau":
        p = plateau_threshold(curve)
        band = (p["low"], p["high"])
        run["calibration"]["plateau"] = {"low": p["low"], "high": p["high"], "smooth_window": SMOOTH_WINDOW,
                                         "tolerance": TOLERANCE}
    plot_threshold_curve(GRID, curve, dest, ev["threshold"], smoothed=smooth(curve), band=band,
                         label=f"macro F1 ({pr.selection_split})",
                         title=f"{run['name']}: threshold {ev['threshold']:.4g} ({mode})")
    run["threshold_curve"] = dest.name

