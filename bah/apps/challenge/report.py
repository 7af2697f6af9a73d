"""Reading a video run (``video-run.json``) back, and presenting it.

The one rule enforced here: test numbers are shown only for a run whose model and threshold were
selected without the test split. ``require_clean_selection`` is called by everything that shows or
uses test results (the fit summary, ``bah submit``).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

from bah.core.files import read_json

__all__ = ["RUN_FILE", "SelectionLeakError", "require_clean_selection", "read_run", "read_predictions",
           "predictions_path", "summary_markdown"]

RUN_FILE = "video-run.json"
PathLike = Union[str, Path]


class SelectionLeakError(ValueError):
    """The run chose its model or threshold on the test split; its test numbers mean nothing."""


def require_clean_selection(run: Mapping[str, Any]) -> None:
    sel = run.get("selection") or {}
    if sel.get("split") == "test" or sel.get("touches_test", True):
        raise SelectionLeakError(
            f"run {run.get('name', '?')!r}: model/threshold were selected on the test split "
            f"(selection split {sel.get('split')!r}); refusing to present test numbers from it")


def read_run(run_dir: PathLike) -> Dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    return read_json(path, f"{path}: not a video run (written by `bah fit-video`)",
                     required=("threshold", "selection", "predictions"))


def predictions_path(run_dir: PathLike, run: Mapping[str, Any], which: str) -> Path:
    name = (run.get("predictions") or {}).get(which)
    if not name:
        raise FileNotFoundError(f"{Path(run_dir) / RUN_FILE}: the run has no {which} predictions")
    return Path(run_dir) / name


def read_predictions(path: PathLike) -> List[Tuple[str, float]]:
    """``video_id,p1,label`` rows -> [(video id, p1)], in file order."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != ["video_id", "p1", "label"]:
            raise ValueError(f"{path}:1: expected the header 'video_id,p1,label', found {header}")
        for lineno, row in enumerate(reader, 2):
            if len(row) != 3:
                raise ValueError(f"{path}:{lineno}: expected 3 fields, found {len(row)}")
            try:
                p1 = float(row[1])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: p1 {row[1]!r} is not a number") from None
            if not 0.0 <= p1 <= 1.0:
                raise ValueError(f"{path}:{lineno}: p1 {p1} is outside [0, 1]")
            out.append((row[0], p1))
    return out


def _pm(block: Mapping[str, Any], key: str) -> str:
    mean, std = block["mean"].get(key), block["std"].get(key)
    return "n/a" if mean is None else f"{mean:.4f} ± {std:.4f}"


def summary_markdown(run: Mapping[str, Any]) -> str:
    """A short Markdown summary; the test block only for a cleanly selected run."""
    cal = run["calibration"]
    sel = run["metrics"]["selection"]
    lines = [
        f"# video run {run['name']}",
        "",
        f"- learner: `{json.dumps(run['learner'])}`; features: {run['features'] or 'none'}; "
        f"text: {run['text_source']}",
        f"- protocol: {run['protocol']} (selection on {run['selection']['split']}, {run['selection']['n']} videos); "
        f"seeds: {run['seeds']}",
        f"- threshold: {run['threshold']:.4f} ({cal['mode']}{', OPTIMISTIC' if cal['optimistic'] else ''})",
        "",
        "| split | macro F1 (seed mean ± std) | AP | ensemble macro F1 |",
        "|---|---|---|---|",
    ]
    test = run["metrics"].get("test") or {}
    try:
        require_clean_selection(run)
        lines.append(f"| {run['selection']['split']} | {_pm(sel, 'avgf1')} | {_pm(sel, 'ap')} | "
                     f"{sel['ensemble']['avgf1']:.4f} |")
        if "mean" in test:
            lines.append(f"| test | {_pm(test, 'avgf1')} | {_pm(test, 'ap')} | {test['ensemble']['avgf1']:.4f} |")
        elif test.get("unlabelled"):
            lines.append(f"| test | unlabelled ({test['unlabelled']} videos) | | |")
    except SelectionLeakError as exc:
        lines += ["", f"Test numbers withheld: {exc}."]
    if run.get("failures"):
        lines += ["", f"{len(run['failures'])} video(s) failed to load: see failures.json"]
    return "\n".join(lines) + "\n"
