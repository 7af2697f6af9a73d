"""ABAW A/H challenge submission files: the writer and a strict validator.

Format (the organisers' template): ``trial-0.txt`` ... ``trial-4.txt``, no header, comma-separated
without spaces, one line per private-test video in the template's order, either
``Videos/<pid>/Visite_1/<file>.mp4,<p0>,<p1>,<label>`` or ``<path>,<label>``.

The organisers' validator compares only the first character of each path, needs
``p0 + p1 == 1.0`` in exact float equality and never checks labels against a threshold. Here:
p1 is written with 4 decimals and p0 as ``1 - p1`` with 4 decimals (exact for all 10,001
values), the label follows the written p1 and the run's stored threshold, and the validator
checks full paths, order, duplicates, missing videos, field counts, bounds, the exact sum and
that one threshold explains every label. Every problem names its line.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from bah.core.files import write_json, write_text

from .report import predictions_path, read_predictions, read_run, require_clean_selection

__all__ = ["MAX_TRIALS", "MANIFEST", "SubmissionError", "probability_fields", "read_template", "trial_name",
           "write_submission", "validate_submission"]

PathLike = Union[str, Path]
MAX_TRIALS = 5
MANIFEST = "trials.json"
_TRIAL = re.compile(r"^trial-(\d+)\.txt$")


class SubmissionError(ValueError):
    """A submission that cannot be written (the message names the video / line / trial)."""


def probability_fields(p1: float) -> Tuple[str, str]:
    """(p0, p1) as 4-decimal strings with float(p0) + float(p1) == 1.0 exactly."""
    if not 0.0 <= p1 <= 1.0:
        raise ValueError(f"probability {p1} is outside [0, 1]")
    s1 = f"{p1:.4f}"
    return f"{1.0 - float(s1):.4f}", s1


def trial_name(trial: int) -> str:
    if not 0 <= trial < MAX_TRIALS:
        raise SubmissionError(f"trial {trial}: the challenge allows {MAX_TRIALS} trials, "
                              f"trial-0 ... trial-{MAX_TRIALS - 1}")
    return f"trial-{trial}.txt"


def read_template(path: PathLike) -> List[str]:
    """The video paths of a template (organisers' ``trial`` template, a split file or a plain list):
    the first comma-separated field of each non-empty line, in order."""
    path = Path(path)
    ids: List[str] = []
    seen: Dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"template not found: {path}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        vid = line.split(",", 1)[0]
        if vid in seen:
            raise SubmissionError(f"{path}:{lineno}: video {vid!r} already listed on line {seen[vid]}")
        seen[vid] = lineno
        ids.append(vid)
    if not ids:
        raise SubmissionError(f"{path}: the template lists no video")
    return ids


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(out_dir: Path) -> Dict:
    path = out_dir / MANIFEST
    if not path.is_file():
        return {"trials": {}}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("trials"), dict):
        raise SubmissionError(f"{path}: not a trials manifest")
    return data


def write_submission(run_dir: PathLike, out_dir: PathLike, trial: int, template: Optional[Sequence[str]] = None,
                     probs: bool = True, overwrite: bool = False) -> Path:
    """Write ``<out_dir>/trial-<trial>.txt`` from a video run's test predictions; record it in
    ``trials.json``. ``template``: the video order (default: the run's test split order)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    name = trial_name(trial)
    run = read_run(run_dir)
    require_clean_selection(run)
    threshold = float(run["threshold"])
    preds = read_predictions(predictions_path(run_dir, run, "test"))
    p1_of = dict(preds)
    order = [v for v, _ in preds] if template is None else list(template)
    missing = [(k, v) for k, v in enumerate(order, 1) if v not in p1_of]
    if missing:
        k, v = missing[0]
        raise SubmissionError(f"template line {k}: video {v!r} has no test prediction in {run_dir} "
                              f"({len(missing)} missing in all)")
    manifest = _manifest(out_dir)
    dest = out_dir / name
    if dest.exists() and not overwrite:
        raise SubmissionError(f"{dest} exists: each trial is written once (pass --overwrite to replace it)")
    existing = {int(k) for k in manifest["trials"]} | {
        int(m.group(1)) for m in (_TRIAL.match(p.name) for p in out_dir.glob("trial-*.txt")) if m}
    if trial not in existing and len(existing) >= MAX_TRIALS:
        raise SubmissionError(f"{out_dir}: already {len(existing)} trials; the challenge allows {MAX_TRIALS}")

    lines, positives = [], 0
    for vid in order:
        p0, p1 = probability_fields(p1_of[vid])
        # the label follows the written p1, so anyone re-deriving labels from the file agrees
        label = int(float(p1) >= threshold)
        positives += label
        lines.append(f"{vid},{p0},{p1},{label}" if probs else f"{vid},{label}")
    write_text(dest, "\n".join(lines) + "\n")
    manifest["trials"][str(trial)] = {
        "file": name, "run": str(run_dir.resolve()), "run_name": run.get("name"), "threshold": threshold,
        "calibration": (run.get("calibration") or {}).get("mode"), "videos": len(order),
        "positive_rate": positives / len(order), "probabilities": probs, "sha256": _sha256(dest),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out_dir / MANIFEST, manifest)
    return dest


def _float(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN is not a probability


def validate_submission(path: PathLike, template: Sequence[str], threshold: Optional[float] = None) -> List[str]:
    """Every problem of a submission file as ``<file>:<line>: message`` (empty list: valid)."""
    path = Path(path)
    problems: List[str] = []
    bad = lambda line, msg: problems.append(f"{path.name}:{line}: {msg}")  # noqa: E731
    m = _TRIAL.match(path.name)
    if not m:
        problems.append(f"{path.name}: the file must be named trial-<K>.txt, K in 0..{MAX_TRIALS - 1}")
    elif int(m.group(1)) >= MAX_TRIALS:
        problems.append(f"{path.name}: trial {int(m.group(1))} is one too many: the challenge allows "
                        f"{MAX_TRIALS} trials (trial-0 ... trial-{MAX_TRIALS - 1})")
    trials = sorted(p.name for p in path.parent.glob("trial-*.txt"))
    if len(trials) > MAX_TRIALS:
        problems.append(f"{path.name}: its folder holds {len(trials)} trial files ({', '.join(trials)}); "
                        f"at most {MAX_TRIALS}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return problems + [f"{path.name}: not UTF-8 text ({exc})"]
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()  # the final newline
    index = {v: k for k, v in enumerate(template, 1)}
    seen: Dict[str, int] = {}
    n_fields: Optional[int] = None  # set by the first line with 2 or 4 fields
    first = 0
    scored: List[Tuple[float, int, int]] = []  # (p1, label, line)
    for lineno, row in enumerate(rows, 1):
        if row.endswith("\r"):
            bad(lineno, "Windows line ending (\\r\\n); write \\n only")
            row = row[:-1]
        if not row:
            bad(lineno, "empty line")
            continue
        fields = row.split(",")
        usable = True
        if len(fields) not in (2, 4):
            bad(lineno, f"{len(fields)} fields; expected 4 (path,p0,p1,label) or 2 (path,label)")
            usable = False
        elif n_fields is None:
            n_fields, first = len(fields), lineno
        elif len(fields) != n_fields:
            bad(lineno, f"{len(fields)} fields; line {first} has {n_fields}")
            usable = False
        if any(f != f.strip() for f in fields):
            bad(lineno, "spaces around a field")
        vid = fields[0]
        expected = template[lineno - 1] if lineno <= len(template) else None
        if vid in seen:
            bad(lineno, f"duplicate: video {vid!r} is already on line {seen[vid]}")
        elif vid != expected:
            if vid in index:
                bad(lineno, f"wrong order: video {vid!r} is on template line {index[vid]}; "
                            f"template line {lineno} is {expected!r}")
            elif expected is None:
                bad(lineno, f"video {vid!r}: the template has only {len(template)} lines")
            else:
                bad(lineno, f"unknown video {vid!r}: not in the template (template line {lineno} is {expected!r})")
        seen.setdefault(vid, lineno)
        if not usable:
            continue
        label_text = fields[-1]
        if label_text not in ("0", "1"):
            bad(lineno, f"label {label_text!r} is not 0 or 1")
            label = None
        else:
            label = int(label_text)
        if len(fields) == 4:
            p0, p1 = _float(fields[1]), _float(fields[2])
            if p0 is None or p1 is None:
                bad(lineno, f"probabilities {fields[1]!r}, {fields[2]!r} are not numbers")
                continue
            if not (0.0 <= p0 <= 1.0 and 0.0 <= p1 <= 1.0):
                bad(lineno, f"probabilities {fields[1]}, {fields[2]} outside [0, 1]")
            if p0 + p1 != 1.0:
                bad(lineno, f"p0 + p1 = {p0 + p1!r}, not exactly 1.0 ({fields[1]} + {fields[2]})")
            if label is not None:
                if threshold is not None and label != int(p1 >= threshold):
                    bad(lineno, f"label {label} disagrees with p1 {fields[2]} at the run's threshold {threshold:.4f}")
                scored.append((p1, label, lineno))
    missing = [(k, v) for k, v in enumerate(template, 1) if v not in seen]
    for k, v in missing[:20]:
        problems.append(f"{path.name}: template line {k}: video {v!r} is missing")
    if len(missing) > 20:
        problems.append(f"{path.name}: ... {len(missing)} template videos missing in all")
    if len(rows) != len(template):
        problems.append(f"{path.name}:{len(rows)}: the file has {len(rows)} lines, the template {len(template)}")
    if threshold is None:
        _one_threshold(scored, bad)
    return problems


def _one_threshold(scored: List[Tuple[float, int, int]], bad) -> None:
    """Labels must follow one threshold: every label-0 p1 below every label-1 p1."""
    zeros = [s for s in scored if s[1] == 0]
    ones = [s for s in scored if s[1] == 1]
    if not zeros or not ones:
        return
    hi0 = max(zeros)
    lo1 = min(ones)
    if hi0[0] >= lo1[0]:
        bad(hi0[2], f"label 0 at p1 {hi0[0]:.4f} but line {lo1[2]} has label 1 at p1 {lo1[0]:.4f}: "
                    f"no single threshold gives these labels")
