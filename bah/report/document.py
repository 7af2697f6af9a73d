"""``bah report RUN_DIR``: the Markdown + PNG report of a training run.

Everything is recomputed from what the trainer leaves in a run folder (``config.yml``,
``metrics.csv``, ``prediction-<split>.pkl``; an evaluation-only folder ``eval-<split>/`` works too),
so a report can be written for any run, old or new, without touching the model.

Video level: besides the original's three aggregations (vote, mean probability, mean logit),
the report scores ``FRAMES_ANY``: a video is A/H when at least ``min_fraction`` of its frames
are predicted A/H. A BAH video is labelled A/H when *any* stretch of it is, and A/H covers
only a part of such a video (18-35 % of the frames in the synthetic set), so a majority vote
of a frame-level model calls every video "No A-H"; the share of A/H frames is the decision
that matches the label's definition. The headline video figure is the run's stored video
decision (``video-decision.json``: its aggregation's score against the threshold fitted on
validation, the rule EVALUATION mode and ``bah predict`` apply); FRAMES_ANY with its fixed share
stays in the table, and is the headline only for a run without a stored rule.
"""
from __future__ import annotations

import argparse
import logging
import math
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from bah.core.files import read_yaml, write_json, write_text
from bah.core.safe_pickle import load_pickle

log = logging.getLogger(__name__)

ANY_NAME = "FRAMES_ANY"
DEFAULT_MIN_FRACTION = 0.1
METRIC_COLUMNS = (("avgf1", "AVGF1"), ("f1_pos", "F1 pos"), ("f1_neg", "F1 neg"), ("acc", "acc"),
                  ("ap", "AP"), ("ap_legacy", "AP (legacy)"), ("auc", "AUC"), ("n", "n"))


class ReportError(ValueError):
    """A run folder that cannot be reported on; the message names the file."""


@dataclass
class Report:
    run_dir: Path
    dest: Path
    markdown: Path
    plots: Dict[str, Path] = field(default_factory=dict)
    frame: Dict[str, Any] = field(default_factory=dict)
    videos: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def frame_avgf1(self) -> float:
        return float(self.frame["avgf1"])

    @property
    def video_headline(self) -> str:
        """The video rule the headline reports: the run's stored decision, else FRAMES_ANY."""
        from bah.metrics import DECISION_NAME

        return DECISION_NAME if DECISION_NAME in self.videos else ANY_NAME

    @property
    def video_avgf1(self) -> float:
        return float(self.videos[self.video_headline]["avgf1"])


def _read_yaml(path: Path) -> Dict[str, Any]:
    data = read_yaml(path, ReportError, what="run file")
    return data


def find_predictions(run_dir: Path, split: str) -> Path:
    """``prediction-<split>.pkl`` of a training run, else of ``eval-<split>/`` (bah evaluate)."""
    for cand in (run_dir / f"prediction-{split}.pkl", run_dir / f"eval-{split}" / f"prediction-{split}.pkl"):
        if cand.is_file():
            return cand
    raise ReportError(f"{run_dir}: no prediction-{split}.pkl (not a finished run, or the {split} split was "
                      f"never evaluated: run `bah evaluate --fd_exp {run_dir} --eval_set {split}`)")


def load_predictions(path: Path) -> Dict[str, Dict[str, Any]]:
    # The original's format: a run folder handed over by someone else must not run code here.
    try:
        d = load_pickle(path)
    except OSError as exc:
        raise ReportError(f"{path}: cannot read predictions ({exc})") from None
    except pickle.UnpicklingError as exc:
        raise ReportError(f"cannot read predictions: {exc}") from None
    if not isinstance(d, dict) or not d:
        raise ReportError(f"{path}: expected a non-empty dict video id -> {{labels, logits, g_labels}}")
    return d


def score_predictions(pred: Mapping[str, Mapping[str, Any]], min_fraction: float = DEFAULT_MIN_FRACTION,
                      decision: Any = None):
    """Frame metrics and every video aggregation (the original three + FRAMES_ANY, and the run's
    stored ``decision`` under ``DECISION`` when given)."""
    from bah.metrics import frame_metrics, predictions_to_arrays, video_aggregate, video_metrics

    a = predictions_to_arrays(pred)
    logits = a["logits"].astype(np.float64)
    frame = frame_metrics(a["labels"], logits=logits)
    videos = video_metrics(a["video_idx"], logits, a["labels_video"], decision=decision)
    share = video_aggregate(a["video_idx"], logits, a["labels_video"], how="vote")  # score = share of A/H frames
    any_pred = (share.score >= min_fraction).astype(np.int64)
    videos[ANY_NAME] = frame_metrics(share.label, probs=share.score, preds=any_pred)
    per_video = [{"video_id": a["video_ids"][int(v)], "label": int(lab), "ah_share": float(s), "pred_any": int(p)}
                 for v, lab, s, p in zip(share.video, share.label, share.score, any_pred)]
    return frame, videos, per_video


def _fmt(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "n/a" if math.isnan(f) else f"{f:.4f}"


def _fps_of(dataset_path: Optional[Path]) -> Dict[str, float]:
    if not dataset_path:
        return {}
    path = Path(dataset_path) / "dataset_index.json"
    if not path.is_file():
        return {}
    import json

    try:
        idx = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {v["video_id"]: float(v.get("fps") or 25.0) for v in idx.get("videos", []) if "video_id" in v}


def pick_timeline_videos(pred: Mapping[str, Mapping[str, Any]], n: int) -> List[str]:
    """A few test videos: mostly ones with A/H (the interesting timelines), and at least one without."""
    pos = [v for v, r in pred.items() if np.asarray(r["labels"]).max() > 0]
    neg = [v for v, r in pred.items() if np.asarray(r["labels"]).max() == 0]
    n_neg = min(len(neg), max(1, n // 3)) if n > 1 else 0
    chosen = pos[: n - n_neg] + neg[:n_neg]
    if len(chosen) < n:
        chosen += [v for v in pred if v not in chosen][: n - len(chosen)]
    return chosen


def write_report(run_dir: Path, dest: Optional[Path] = None, split: str = "test", n_timelines: int = 4,
                 min_fraction: float = DEFAULT_MIN_FRACTION, title: Optional[str] = None,
                 extra: Optional[Mapping[str, Any]] = None) -> Report:
    """Write ``report.md``, ``metrics.json`` and the PNGs of one run into ``dest`` (default RUN_DIR/report)."""
    from bah.metrics import plots
    run_dir = Path(run_dir).absolute()
    if not run_dir.is_dir():
        raise ReportError(f"run folder not found: {run_dir}")
    dest = Path(dest) if dest else run_dir / "report"
    cfg_path = run_dir / "config.yml"
    cfg = _read_yaml(cfg_path) if cfg_path.is_file() else {}
    pred_path = find_predictions(run_dir, split)
    pred = load_predictions(pred_path)
    from bah.train.run_folder import load_video_decision

    try:
        decision = load_video_decision(run_dir)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    frame, videos, per_video = score_predictions(pred, min_fraction, decision)

    out = Report(run_dir=run_dir, dest=dest, markdown=dest / "report.md", frame=frame, videos=videos)
    curves = run_dir / "metrics.csv"
    if curves.is_file():
        try:
            out.plots["learning curves"] = plots.plot_learning_curves(curves, dest / "learning-curves.png")
        except ValueError as exc:
            log.warning("no learning curves: %s", exc)
    out.plots["confusion matrix (frames)"] = plots.plot_confusion_matrix(
        frame["confusion_counts"], dest / f"confusion-{split}.png", title=f"frames, {split}")
    rule = decision.rule_text() if decision else f"{ANY_NAME}, share >= {min_fraction:g}"
    out.plots[f"confusion matrix (videos, {rule})"] = plots.plot_confusion_matrix(
        videos[out.video_headline]["confusion_counts"], dest / f"confusion-videos-{split}.png",
        title=f"videos ({rule}), {split}")
    from bah.metrics.video import predictions_to_arrays

    arrays = predictions_to_arrays(pred)
    if 0 < int(arrays["labels"].sum()) < arrays["labels"].size:
        out.plots["precision-recall (frames)"] = plots.plot_pr_curve(
            arrays["labels"], dest / f"pr-{split}.png", logits=arrays["logits"].astype(np.float64),
            name=str(cfg.get("model_name", "model")), title=f"frames, {split}")
    fps = _fps_of(Path(cfg["dataset_path"]) if cfg.get("dataset_path") else None)
    timelines = []
    for k, vid in enumerate(pick_timeline_videos(pred, n_timelines)):
        r = pred[vid]
        png = plots.plot_video_timeline(dest / f"timeline-{k}.png", frame_labels=np.asarray(r["labels"]),
                                        logits=np.asarray(r["logits"], dtype=np.float64), fps=fps.get(vid, 25.0),
                                        title=vid)
        out.plots[f"timeline {k}: {vid}"] = png
        timelines.append(vid)

    write_json(dest / "metrics.json", {
        "run_dir": str(run_dir), "split": split, "predictions": str(pred_path), "min_fraction": min_fraction,
        "video_decision": decision.to_dict() if decision else None, "video_headline": out.video_headline,
        "frame": _jsonable(frame), "videos": {k: _jsonable(v) for k, v in videos.items()}, "per_video": per_video,
        "extra": _jsonable(dict(extra or {})),
    })
    write_text(out.markdown, _markdown(out, cfg, split, pred_path, per_video, min_fraction, title, extra or {},
                                       decision))
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _markdown(r: Report, cfg: Mapping[str, Any], split: str, pred_path: Path, per_video, min_fraction: float,
              title: Optional[str], extra: Mapping[str, Any], decision: Any = None) -> str:
    rel = lambda p: Path(p).relative_to(r.dest).as_posix() if Path(p).is_relative_to(r.dest) else str(p)  # noqa: E731
    lines = [f"# {title or 'A/H recognition report'}", ""]
    lines += [f"Run folder: `{r.run_dir}`  ", f"Split scored: **{split}** ({len(per_video)} videos, "
              f"{int(r.frame['n'])} frames; predictions `{pred_path}`)", ""]
    lines += ["## Headline", "",
              f"- frame-level AVGF1: **{_fmt(r.frame['avgf1'])}**",
              (f"- video-level AVGF1 (the run's video decision, fitted on {decision.fitted_on}: A/H when "
               f"{decision.rule_text()}): **{_fmt(r.video_avgf1)}**" if decision else
               f"- video-level AVGF1 ({ANY_NAME}: A/H when >= {min_fraction:g} of the frames are predicted A/H; the "
               f"run stores no video decision): **{_fmt(r.video_avgf1)}**"), ""]
    lines += ["## Configuration", "", "| setting | value |", "|---|---|"]
    for key in ("model_name", "modality", "window_length", "hop_length", "train_batch_size", "opt__name_optimizer",
                "effective_lr", "num_epochs", "best_epoch", "effective_eval_metric", "seed", "compat", "dataset_path",
                "n_videos", "modality_dims"):
        if key in cfg:
            lines.append(f"| {key} | `{cfg[key]}` |")
    for key, value in extra.items():
        lines.append(f"| {key} | `{value}` |")
    lines += ["", "## Metrics", "", "| level | " + " | ".join(h for _, h in METRIC_COLUMNS) + " |",
              "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    rows = [("frames", r.frame)] + [(f"videos: {k}", v) for k, v in r.videos.items()]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k, _ in METRIC_COLUMNS) + " |")
    lines += ["", "Video aggregations: FRAMES_VOTE = majority of frame decisions, FRAMES_AVG_PROBS = mean "
              "probability, FRAMES_AVG_LOGITS = mean logits (the original's three), "
              f"{ANY_NAME} = share of A/H frames >= {min_fraction:g}. AP (legacy) is the original's "
              "`Average_precision_POS` (see docs/metrics.md).", ""]
    lines += ["## Plots", ""]
    for name, png in r.plots.items():
        lines += [f"### {name}", "", f"![{name}]({rel(png)})", ""]
    lines += ["## Per video", "", "| video | label | share of frames predicted A/H | predicted |", "|---|---|---|---|"]
    for pv in per_video:
        lines.append(f"| `{pv['video_id']}` | {pv['label']} | {pv['ah_share']:.3f} | {pv['pred_any']} |")
    lines += ["", "## Files", "",
              f"- report: `{r.markdown}`, all numbers in `{r.dest / 'metrics.json'}`",
              f"- run: `{r.run_dir}` (config.yml, metrics.csv, perf-*.yml, prediction-*.pkl, best-model/, checkpoints/)",
              ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("report")
    g.add_argument("run_dir", help="a run folder written by the trainer (<output_root>/BAH_DB/fold-0/id_<exp_id>)")
    g.add_argument("--dest", default=None, help="old name of --out: the report folder (default RUN_DIR/report)")
    g.add_argument("--split", default="test", choices=("test", "val"), help="which split's predictions to report")
    g.add_argument("--timelines", type=int, default=4, help="number of per-video timeline plots")
    g.add_argument("--min-fraction", type=float, default=DEFAULT_MIN_FRACTION,
                   help=f"{ANY_NAME}: a video is A/H when at least this share of its frames is (default 0.1)")


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.min_fraction <= 1.0:
        print("bah report: --min-fraction must be in (0, 1]", file=sys.stderr)
        return 2
    try:
        dest = args.dest or getattr(args, "out", None)  # --out, the flag every command shares, or its old name
        r = write_report(Path(args.run_dir), Path(dest) if dest else None, split=args.split,
                         n_timelines=args.timelines, min_fraction=args.min_fraction)
    except (ReportError, ValueError) as exc:
        print(f"bah report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {r.markdown} ({len(r.plots)} plots)")
    print(f"frame-level AVGF1 {r.frame_avgf1:.4f}")
    print(f"video-level AVGF1 {r.video_avgf1:.4f} ({r.video_headline})")
    return 0
