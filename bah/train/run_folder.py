"""The run folder: ``<output_root>/<dataset>/fold-<k>/id_<exp_id>/``.

Holds ``config.yml`` (resolved options, effective values included), ``cmd.sh``, ``log.txt``,
``metrics.csv`` (one row per epoch), ``perf-{val,test}.yml`` and ``prediction-{val,test}.pkl``
in the original's format, ``checkpoints/{last,best}.pth``, ``best-model/{model.pt,config.yml}``
(the original's release layout), ``plots/*.png`` and ``passed.txt`` once finished. A finished
run is never overwritten silently.
"""
from __future__ import annotations

import csv
import io
import logging
import pickle
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from bah.core.files import atomic_path, files_umask, write_text, write_yaml

log = logging.getLogger(__name__)

PASSED = "passed.txt"
PREPROCESSING = "preprocessing.yaml"
NORMALISATION = "normalisation.npz"
# bump when preprocessing.yaml / normalisation.npz, or what predict must redo from them, changes
PREPROCESSING_FORMAT = 1


class RunExistsError(RuntimeError):
    pass


def run_dir(output_root: Path, dataset: str, fold: int, exp_id: str) -> Path:
    return Path(output_root) / dataset / f"fold-{fold}" / f"id_{exp_id}"


class RunFolder:
    def __init__(self, path: Path, write: bool = True):
        self.path = Path(path)
        self.write = write  # False on DDP ranks other than 0

    @property
    def last(self) -> Path:
        return self.path / "checkpoints" / "last.pth"

    @property
    def best(self) -> Path:
        return self.path / "checkpoints" / "best.pth"

    @property
    def finished(self) -> bool:
        return (self.path / PASSED).exists()

    @classmethod
    def open_for_training(cls, path: Path, resume: bool, force: bool, write: bool = True) -> "RunFolder":
        run = cls(path, write)
        if run.finished and not force:
            raise RunExistsError(
                f"run {path} is complete ({PASSED} exists). Use another --exp_id, pass --force True to "
                f"train it again from scratch, or evaluate it with --mode EVALUATION --fd_exp {path}")
        if run.last.exists() and not resume and not force:
            raise RunExistsError(
                f"run {path} has a checkpoint from an interrupted run. Pass --resume True to continue it, "
                f"--force True to start over, or use another --exp_id")
        if write:
            if force and run.finished:
                (path / PASSED).unlink()
            run.path.mkdir(parents=True, exist_ok=True)
        return run

    def setup_logging(self, name: str = "log.txt", verbose: bool = True) -> None:
        if not self.write:
            return
        root = logging.getLogger()
        fh = logging.FileHandler(self.path / name, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        if verbose and not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                               for h in root.handlers):
            root.addHandler(logging.StreamHandler(sys.stderr))

    def save_config(self, options: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None,
                    name: str = "config.yml") -> None:
        if self.write:
            from bah.core.provenance import provenance

            write_yaml(self.path / name, {**dict(options), **dict(extra or {}), "provenance": provenance()})

    def save_cmd(self, argv: Sequence[str], prog: str = "python main.py") -> None:
        """``cmd.sh``: the same command, from the same folder, with the same interpreter."""
        if not self.write:
            return
        parts: List[str] = []
        for a in argv:  # one "--flag value" per line
            if parts and not a.startswith("--") and parts[-1].startswith("--") and " " not in parts[-1]:
                parts[-1] += " " + shlex.quote(a)
            else:
                parts.append(shlex.quote(a))
        args = " \\\n    ".join(parts)
        entry = "-m bah.cli train" if prog.startswith("bah") else \
            "-c 'import sys; from bah.train.cli import main; sys.exit(main())'"  # main.py's flags
        lines = ["#!/usr/bin/env bash", f"# {prog}, {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()}",
                 "set -e", f"cd {shlex.quote(os.getcwd())}"]
        if os.environ.get("PYTHONPATH"):
            lines.append(f"export PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])}")
        lines.append(f"exec {shlex.quote(sys.executable)} {entry} {args}")
        write_text(self.path / "cmd.sh", "\n".join(lines) + "\n")
        os.chmod(self.path / "cmd.sh", 0o777 & ~files_umask())

    def save_metrics(self, history: List[Mapping[str, Any]]) -> None:
        """Rewrite metrics.csv from the whole history (a resumed run keeps earlier rows)."""
        if not self.write or not history:
            return
        cols: List[str] = []
        for row in history:
            cols += [k for k in row if k not in cols]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, "") for k in cols})
        write_text(self.path / "metrics.csv", buf.getvalue())

    def save_predictions(self, split: str, preds: Mapping[str, Mapping[str, np.ndarray]], prefix: str = "") -> None:
        if not self.write:
            return
        out = {v: {"labels": p["labels"], "logits": p["logits"], "g_labels": p["g_labels"]} for v, p in preds.items()}
        with atomic_path(self.path / f"{prefix}prediction-{split}.pkl") as tmp, open(tmp, "wb") as fh:
            pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def save_perf(self, split: str, dataset: str, scores: Mapping[str, Any], extra: Optional[Mapping] = None,
                  prefix: str = "") -> None:
        if not self.write:
            return
        from bah.metrics import to_original_keys

        doc = {"dataset": dataset, "split": split, "perfs_frames": to_original_keys(scores["frame"]),
               "perfs_videos": {agg: to_original_keys(m) for agg, m in scores["video"].items()},
               "metrics": {k: float(v) for k, v in scores["flat"].items()}}
        doc.update(dict(extra or {}))
        write_yaml(self.path / f"{prefix}perf-{split}.yml", doc)

    def save_video_decision(self, decision: Any, folder: Optional[Path] = None) -> None:
        """``video-decision.json`` (``bah.metrics.VideoDecision``) in the run folder or ``folder``."""
        if self.write and decision is not None:
            from bah.core.files import write_json
            from bah.metrics import DECISION_FILE

            write_json(Path(folder or self.path) / DECISION_FILE, decision.to_dict())

    def save_preprocessing(self, dataset_path: Path, modality_dims: Mapping[str, Any],
                           stats: Mapping[str, Any], compat: bool, stats_splits: Sequence[str] = ()) -> None:
        """Record the preprocessing of ``dataset_path`` this run trains on (see the module docstring)."""
        if not self.write:
            return
        write_yaml(self.path / PREPROCESSING, preprocessing_record(dataset_path, modality_dims, stats, compat,
                                                                   stats_splits))
        with atomic_path(self.path / NORMALISATION, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{f"{m}.{k}": np.asarray(getattr(s, k)) for m, s in stats.items()
                            for k in ("mean", "std", "count")})

    def mark_passed(self) -> None:
        if self.write:
            write_text(self.path / PASSED, time.strftime("%Y-%m-%d %H:%M:%S\n"))

    def save_plots(self, history: Sequence[Mapping[str, Any]], preds: Optional[Mapping] = None,
                   split: str = "test", prefix: str = "") -> List[Path]:
        """Learning curves, confusion matrix and PR curve PNGs (needs bah.metrics.plots)."""
        if not self.write:
            return []
        try:
            from bah.metrics import plots
        except ImportError:
            log.warning("bah.metrics.plots is not available: no PNG plots written")
            return []
        out = self.path / "plots"
        out.mkdir(exist_ok=True)
        written: List[Path] = []
        steps = []
        if history:
            import pandas as pd

            steps.append(lambda: plots.plot_learning_curves(pd.DataFrame(list(history)), out / f"{prefix}curves.png"))
        if preds:
            from bah.metrics import frame_metrics

            ids = [v for v in preds if len(preds[v]["labels"])]
            labels = np.concatenate([preds[v]["labels"] for v in ids])
            logits = np.concatenate([np.asarray(preds[v]["logits"], np.float64) for v in ids])
            steps.append(lambda: plots.plot_confusion_matrix(frame_metrics(labels, logits=logits),
                                                             out / f"{prefix}confusion-{split}.png"))
            steps.append(lambda: plots.plot_pr_curve(labels, out / f"{prefix}pr-{split}.png", logits=logits))
        for make in steps:
            try:
                written += _as_list(make())
            except (AttributeError, TypeError, ValueError) as exc:  # e.g. a PR curve without positives
                log.warning("plot not written (%s)", exc)
        return written


def load_video_decision(folder: Path) -> Optional[Any]:
    """The stored video decision of a run (``video-decision.json`` in ``folder``, its
    ``best-model/`` or its parent run folder); ``None`` for runs without one (the original's)."""
    import json

    from bah.metrics import DECISION_FILE, VideoDecision

    folder = Path(folder)
    for cand in (folder / DECISION_FILE, folder / "best-model" / DECISION_FILE, folder.parent / DECISION_FILE):
        if cand.is_file():
            try:
                return VideoDecision.from_dict(json.loads(cand.read_text(encoding="utf-8")), str(cand))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{cand}: not valid JSON ({exc})") from None
    return None


def _stage_section(dataset_path: Path, stage: str) -> Optional[Dict[str, Any]]:
    import yaml

    folder = Path(dataset_path) / "stages" / stage
    # one file per block (config-block<b>.yaml), config.yaml from unblocked stages and older runs
    files = sorted(folder.glob("config-block*.yaml")) or [folder / "config.yaml"]
    sections = []
    for f in files:
        if f.is_file():
            doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            section = dict(doc.get(stage) or {})
            if section not in sections:
                sections.append(section)
    if not sections:
        return None
    if len(sections) > 1:
        log.warning("blocks of stage %s ran with %d different settings (%s); recording the first",
                    stage, len(sections), folder)
    return sections[0]


def preprocessing_record(dataset_path: Path, modality_dims: Mapping[str, Any], stats: Mapping[str, Any],
                         compat: bool, stats_splits: Sequence[str] = ()) -> Dict[str, Any]:
    import json

    from bah import __version__

    dataset_path = Path(dataset_path)
    extractors: Dict[str, Any] = {}
    features_version = None
    # one meta file per block; the blocks share settings, so their extractor facts merge
    for meta in sorted((dataset_path / "stages" / "features").glob("meta-block*.json")):
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("preprocessing record: unreadable %s (%s)", meta, exc)
            continue
        extractors.update(doc.get("extractors") or {})
        features_version = doc.get("version", features_version)
    dims = {m: (None if d is None else ([int(x) for x in d] if isinstance(d, (tuple, list)) else int(d)))
            for m, d in modality_dims.items()}
    return {
        "format_version": PREPROCESSING_FORMAT,
        "bah_version": __version__,
        "dataset_path": str(dataset_path),
        "modalities": list(dims),
        "modality_dims": dims,
        "faces": _stage_section(dataset_path, "faces"),
        "features": _stage_section(dataset_path, "features"),
        "features_version": features_version,
        "extractors": extractors,
        "normalisation": {"file": NORMALISATION if stats else None, "modalities": sorted(stats),
                          "compat": bool(compat), "splits": list(stats_splits)},
    }


def _as_list(x: Any) -> List[Path]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [Path(x)]
