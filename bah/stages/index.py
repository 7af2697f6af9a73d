"""``bah index``: gather the per-video arrays into ``dataset_info.pkl`` and a readable JSON index.

``dataset_info.pkl`` is exactly what the original trainer reads (original-preprocessing §6):
``{split: {trial, length, subject_no, trial_no, partition, pseudo_partition, data_folder,
trial_list}}`` for split in train/val/test, so data prepared here trains with the original
code and data prepared there trains here. ``subject_no`` keeps the original's running counter
within the split (it is *not* the participant); the real participant id is added as
``participant``.

The index is the last gate before training: the trainer silently reads zeros for a missing
file and windows over ``length``, so an array whose first dimension is not the manifest's N
would train on misaligned frames. The index therefore refuses to write when any array of any
indexed video disagrees, and lists every such video. Videos the manifest could not read, or
that a stage recorded as failed, are left out and listed.
"""
from __future__ import annotations

import argparse
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from bah.core.config import ConfigError, section
from bah.data import format_video_split_line
from bah.core.files import atomic_path, read_jsonl, write_json, write_text
from bah.core.layout import DATA_FOLDER, INDEX_JSON, LABEL_MODALITY, dataset_info_path, features_root, stage_dir, video_dir
from bah.core.safe_pickle import load_pickle

log = logging.getLogger(__name__)

STAGE = "index"
SPLITS = ("train", "val", "test")
INDEX_VERSION = 1
SPLIT_DIR = "split"
# Byte for byte the original's class_id.yaml (no trailing newline).
CLASS_ID_YAML = "With A-H: 1\nNo A-H: 0"
# Protocol 4 reads on every Python 3 the original code runs on.
PICKLE_PROTOCOL = 4


class IndexValidationError(ValueError):
    """The arrays disagree with the manifest; ``problems`` lists (video id, what is wrong)."""

    def __init__(self, problems: Sequence[Tuple[str, str]]):
        self.problems = list(problems)
        lines = "\n".join(f"  {vid}: {msg}" for vid, msg in self.problems)
        videos = len({vid for vid, _ in self.problems})
        super().__init__(f"refusing to write the index: {videos} video(s) disagree with the manifest:\n{lines}")


@section("index")
@dataclass(frozen=True)
class IndexConfig:
    splits: Tuple[str, ...] = SPLITS  # keys of dataset_info.pkl; must match the trainer's split file names
    allow_empty_splits: bool = False  # write an empty split instead of failing
    require: Tuple[str, ...] = ()  # modalities (file stems) every indexed video must have
    exclude_failed: bool = True  # leave out videos a stage recorded as failed (and not redone since)
    check_finite: bool = False  # also scan float arrays for NaN/inf (they are checked when written)
    split_files: bool = True  # also write <out>/split/{split}.txt + class_id.yaml listing the indexed videos

    def __post_init__(self):
        if not self.splits:
            raise ValueError("index.splits must name at least one split")
        if len(set(self.splits)) != len(self.splits):
            raise ValueError(f"index.splits has duplicates: {list(self.splits)}")


@dataclass
class IndexResult:
    dataset_info: Dict[str, Dict[str, Any]]
    index: Dict[str, Any]
    excluded: List[Dict[str, Any]] = field(default_factory=list)
    problems: List[Tuple[str, str]] = field(default_factory=list)


def stage_failures(out: Path, skip: Iterable[str] = (STAGE,)) -> Dict[str, List[str]]:
    """video id -> ["<stage>: <reason>", ...] for failures still standing in any stage's lists.

    A failure whose video was redone successfully since (its status record says done) no
    longer counts: failure lists are per block and outlive a rerun with other block counts.
    """
    found: Dict[str, List[str]] = {}
    root = Path(out) / "stages"
    if not root.is_dir():
        return found
    for sdir in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in set(skip)):
        for path in sorted(sdir.glob("failures-block*.jsonl")):
            try:
                rows = read_jsonl(path)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            for row in rows:
                vid = row.get("video_id")
                if not vid or _status_done(sdir, vid):
                    continue
                found.setdefault(vid, []).append(f"{sdir.name}: {row.get('reason', 'failed')}")
    return found


def _status_done(sdir: Path, video_id: str) -> bool:
    try:
        rec = _read_json(sdir / "status" / (video_id + ".json"))
    except (OSError, ValueError):
        return False
    return rec.get("status") == "done"


def _read_json(path: Path) -> Any:
    import json

    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def inspect_arrays(folder: Path) -> Dict[str, Dict[str, Any]]:
    """Shape and dtype of every ``*.npy`` directly in a video folder, from the headers only."""
    arrays: Dict[str, Dict[str, Any]] = {}
    if not folder.is_dir():
        return arrays
    for path in sorted(folder.glob("*.npy")):
        try:
            shape, dtype = npy_header(path)
            arrays[path.stem] = {"shape": list(shape), "dtype": str(dtype)}
        except (ValueError, OSError) as exc:
            arrays[path.stem] = {"error": f"unreadable ({exc})"}
    return arrays


def npy_header(path: Path) -> Tuple[Tuple[int, ...], np.dtype]:
    """(shape, dtype) of a ``.npy`` file from its header alone (also for empty arrays, which
    cannot be memory-mapped); a file shorter than its header promises is reported as truncated."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        version = fmt.read_magic(fh)
        reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _fortran, dtype = reader(fh)
        if dtype.hasobject:
            raise ValueError("object arrays are not allowed")
        expected = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = Path(path).stat().st_size
    if size < expected:
        raise ValueError(f"truncated: {size} bytes, header promises {expected}")
    return tuple(int(x) for x in shape), dtype


def _check_video(folder: Path, n: int, arrays: Mapping[str, Mapping[str, Any]], require: Sequence[str],
                 check_finite: bool) -> List[str]:
    msgs: List[str] = []
    if not arrays:
        msgs.append(f"no arrays in {folder}")
    for name in require:
        if name not in arrays:
            msgs.append(f"{name}.npy missing")
    for name, info in arrays.items():
        if "error" in info:
            msgs.append(f"{name}.npy {info['error']}")
            continue
        shape = info["shape"]
        if not shape or shape[0] != n:
            msgs.append(f"{name}.npy has shape {tuple(shape)}, first dimension must be N={n}")
        elif check_finite and np.dtype(info["dtype"]).kind == "f":
            arr = np.load(folder / f"{name}.npy", mmap_mode="r")
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            if bad:
                msgs.append(f"{name}.npy has {bad} NaN/inf values")
    return msgs


def _ah_fraction(folder: Path, arrays: Mapping[str, Mapping[str, Any]]) -> Optional[float]:
    info = arrays.get(LABEL_MODALITY)
    if not info or "error" in info or not info["shape"] or info["shape"][0] == 0:
        return None
    lab = np.load(folder / f"{LABEL_MODALITY}.npy", mmap_mode="r")
    return float(np.mean(np.asarray(lab, dtype=np.float64) > 0.5))


def _label_origin(out: Path, video_id: str) -> Optional[str]:
    """Where the video's frame labels came from, per ``bah labels`` (None: not written by it)."""
    try:
        rec = _read_json(stage_dir(out, "labels") / "status" / (video_id + ".json"))
    except (OSError, ValueError):
        return None
    return rec.get("origin") if rec.get("status") == "done" else None


def _consistency_warnings(videos: Sequence[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """Non-fatal oddities: a modality most videos of a split have but this one lacks (training
    would read zeros for it), and label files that are not float32 (the original's int64 broadcast)."""
    warnings: List[Dict[str, str]] = []
    by_split: Dict[str, List[Mapping[str, Any]]] = {}
    for v in videos:
        by_split.setdefault(v["split"], []).append(v)
    for split, vs in by_split.items():
        counts: Dict[str, int] = {}
        for v in vs:
            for m in v["modalities"]:
                counts[m] = counts.get(m, 0) + 1
        common = sorted(m for m, c in counts.items() if 2 * c > len(vs))
        for v in vs:
            lacking = [m for m in common if m not in v["modalities"]]
            if lacking:
                warnings.append({"video_id": v["video_id"], "warning": f"lacks {lacking}, present in most "
                                 f"{split} videos (training reads zeros for a missing file)"})
            lab = v["modalities"].get(LABEL_MODALITY)
            if lab and lab.get("dtype") not in (None, "float32"):
                warnings.append({"video_id": v["video_id"], "warning": f"{LABEL_MODALITY}.npy is {lab['dtype']}, "
                                 f"not float32 (run `bah labels`)"})
    return warnings


def build_index(out: Path, records: Sequence[Any], cfg: IndexConfig = IndexConfig(),
                progress: bool = True) -> IndexResult:
    """Validate the arrays of every manifest video and build both indexes (nothing is written)."""
    from bah.core.progress import progress_bar

    out = Path(out)
    failures = stage_failures(out) if cfg.exclude_failed else {}
    unknown_splits = sorted({r.split for r in records} - set(cfg.splits))
    if unknown_splits:
        log.warning("manifest splits %s are not indexed (index.splits = %s)", unknown_splits, list(cfg.splits))
    info: Dict[str, Dict[str, Any]] = {
        s: {"trial": [], "length": [], "subject_no": [], "participant": [], "trial_no": [], "partition": [],
            "pseudo_partition": [], "data_folder": DATA_FOLDER, "trial_list": {"EXPR": {s: []}}}
        for s in cfg.splits
    }
    videos: List[Dict[str, Any]] = []
    excluded: List[Dict[str, Any]] = []
    problems: List[Tuple[str, str]] = []
    wanted = [r for r in records if r.split in info]
    for rec in progress_bar(wanted, desc="index", unit="video", disable=not progress):
        vid = rec.video_id
        if getattr(rec, "error", None):
            excluded.append({"video_id": vid, "split": rec.split, "reason": f"manifest: {rec.error}"})
            continue
        if vid in failures:
            excluded.append({"video_id": vid, "split": rec.split, "reason": "; ".join(failures[vid])})
            continue
        n = int(rec.n_frames or 0)
        folder = video_dir(out, vid)
        arrays = inspect_arrays(folder)
        msgs = ([f"the manifest has N={n} frames"] if n <= 0 else []) + \
            _check_video(folder, n, arrays, cfg.require, cfg.check_finite)
        problems.extend((vid, m) for m in msgs)
        if msgs:
            continue
        split = info[rec.split]
        split["subject_no"].append(len(split["trial"]))
        split["trial"].append(vid)
        split["length"].append(n)
        split["participant"].append(getattr(rec, "participant", None))
        split["trial_no"].append(1)
        split["partition"].append(rec.split)
        split["pseudo_partition"].append(rec.split)
        split["trial_list"]["EXPR"][rec.split].append(
            format_video_split_line(vid, rec.label, getattr(rec, "transcript", "") or ""))
        videos.append({
            "video_id": vid, "split": rec.split, "participant": getattr(rec, "participant", None),
            "question": getattr(rec, "question", None), "label": rec.label, "n_frames": n,
            "fps": getattr(rec, "avg_fps", None), "modalities": arrays,
            "ah_fraction": _ah_fraction(folder, arrays),
            "label_origin": _label_origin(out, vid),
        })
    warnings = _consistency_warnings(videos)
    for w in warnings:
        log.warning("%s: %s", w["video_id"], w["warning"])
    if not problems:
        empty = [s for s in cfg.splits if not info[s]["trial"]]
        if empty and not cfg.allow_empty_splits:
            raise ConfigError(
                f"split(s) {empty} would be empty in the index (manifest splits: "
                f"{sorted({r.split for r in records})}, {len(excluded)} video(s) excluded); "
                f"pass --allow-empty-splits or set index.splits")
    summary = {
        s: {"videos": len(info[s]["trial"]), "frames": int(sum(info[s]["length"])),
            "participants": len(set(info[s]["participant"])),
            "positives": sum(1 for v in videos if v["split"] == s and v["label"] == 1)}
        for s in cfg.splits
    }
    index = {
        "version": INDEX_VERSION, "data_folder": DATA_FOLDER, "features_root": str(features_root(out)),
        "splits": summary, "videos": videos, "excluded": excluded, "warnings": warnings,
    }
    return IndexResult(info, index, excluded, problems)


def write_index(out: Path, result: IndexResult, split_files: bool = False) -> Tuple[Path, Path]:
    """Write ``dataset_info.pkl`` and ``dataset_index.json`` atomically, or refuse (problems).

    With ``split_files``, also ``<out>/split/<split>.txt`` and ``class_id.yaml``: the original
    trainer looks every id of its split files up in dataset_info and fails on an excluded video,
    so it needs split files that list exactly the indexed videos.
    """
    if result.problems:
        raise IndexValidationError(result.problems)
    pkl = write_dataset_info(out, result.dataset_info)
    js = Path(out) / INDEX_JSON
    write_json(js, result.index)
    if split_files:
        write_split_files(Path(out) / SPLIT_DIR, result.dataset_info)
    return pkl, js


def write_split_files(folder: Path, info: Mapping[str, Mapping[str, Any]]) -> None:
    for s, d in info.items():
        lines = d.get("trial_list", {}).get("EXPR", {}).get(s, [])
        write_text(folder / f"{s}.txt", "".join(line + "\n" for line in lines))
    write_text(folder / "class_id.yaml", CLASS_ID_YAML)


# ----------------------------------------------------------------------------------------
# Readers (what training uses)


def load_dataset_info(out: Path, splits: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Any]]:
    """Read ``<out>/dataset_info.pkl`` (ours or the original's), checking the fields training needs."""
    path = dataset_info_path(out)
    try:
        info = load_pickle(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: run `bah index --out {out}` first") from None
    except pickle.UnpicklingError as exc:
        raise ValueError(f"not a readable dataset_info pickle: {exc}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a dict of splits, got {type(info).__name__}")
    for s in splits if splits is not None else list(info):
        if s not in info:
            raise ValueError(f"{path}: no split {s!r}; present: {sorted(info)}")
        d = info[s]
        missing = [k for k in ("trial", "length", "data_folder") if k not in d]
        if missing:
            raise ValueError(f"{path}: split {s!r} lacks {missing}")
        if len(d["trial"]) != len(d["length"]):
            raise ValueError(f"{path}: split {s!r} has {len(d['trial'])} trials but {len(d['length'])} lengths")
    return info


def load_index(out: Path) -> Dict[str, Any]:
    """Read ``<out>/dataset_index.json``."""
    path = Path(out) / INDEX_JSON
    try:
        index = _read_json(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: run `bah index --out {out}` first") from None
    except ValueError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if index.get("version") != INDEX_VERSION:
        raise ValueError(f"{path}: index version {index.get('version')!r}, this code reads {INDEX_VERSION}")
    return index


# ----------------------------------------------------------------------------------------
# The original's per-part pickles (data prepared with the original feature extraction)

PART_FIELDS = ("trial", "length", "subject_no", "trial_no", "partition", "pseudo_partition")


def merge_part_infos(features_dir: Path, dataset: str = "BAH_DB",
                     splits: Sequence[str] = SPLITS) -> Dict[str, Dict[str, Any]]:
    """Concatenate the original's ``dataset_info_<ds>_<split>_<P>_<p>.pkl`` in part order (§6).

    Every part 0..P-1 of each split must be present and agree on P; a gap is an error naming
    the missing file, since training on a partial split would silently drop videos.
    """
    features_dir = Path(features_dir)
    merged: Dict[str, Dict[str, Any]] = {}
    for s in splits:
        parts: Dict[int, Dict[int, Path]] = {}
        for path in features_dir.glob(f"dataset_info_{dataset}_{s}_*_*.pkl"):
            tail = path.stem[len(f"dataset_info_{dataset}_{s}_"):].split("_")
            if len(tail) != 2 or not all(t.isdigit() for t in tail):
                continue
            parts.setdefault(int(tail[0]), {})[int(tail[1])] = path
        if not parts:
            raise FileNotFoundError(f"no dataset_info_{dataset}_{s}_<P>_<p>.pkl in {features_dir}")
        if len(parts) > 1:
            raise ValueError(f"split {s}: part files with different part counts {sorted(parts)} in {features_dir}")
        (nparts, found), = parts.items()
        missing = [f"dataset_info_{dataset}_{s}_{nparts}_{p}.pkl" for p in range(nparts) if p not in found]
        if missing:
            raise FileNotFoundError(f"split {s}: missing part file(s) {missing} in {features_dir}")
        out: Dict[str, Any] = {k: [] for k in PART_FIELDS}
        out["data_folder"] = DATA_FOLDER
        lines: List[str] = []
        for p in range(nparts):
            try:
                part = load_pickle(found[p])
            except pickle.UnpicklingError as exc:
                raise ValueError(str(exc)) from None
            if not isinstance(part, dict):
                raise ValueError(f"{found[p]}: expected a dict, got {type(part).__name__}")
            for k in PART_FIELDS:
                if k not in part:
                    raise ValueError(f"{found[p]}: no {k!r}")
                out[k].extend(part[k])
            out["data_folder"] = part.get("data_folder", out["data_folder"])
            lines = lines or list(part.get("trial_list", {}).get("EXPR", {}).get(s, []))
        if lines:
            out["trial_list"] = {"EXPR": {s: lines}}
        merged[s] = out
    return merged


def check_part_infos(features_dir: Path, info: Mapping[str, Mapping[str, Any]],
                     require: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """Problems of merged original part infos: arrays under ``features_dir/<data_folder>/<trial>``
    whose first dimension is not the recorded ``length`` (the original's N)."""
    problems: List[Tuple[str, str]] = []
    for s, d in info.items():
        for vid, n in zip(d["trial"], d["length"]):
            folder = Path(features_dir) / d.get("data_folder", DATA_FOLDER) / vid
            problems.extend((vid, m) for m in _check_video(folder, int(n), inspect_arrays(folder), require, False))
    return problems


def write_dataset_info(out: Path, info: Mapping[str, Any]) -> Path:
    pkl = dataset_info_path(out)
    with atomic_path(pkl) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(dict(info), fh, protocol=PICKLE_PROTOCOL)
    return pkl


# ----------------------------------------------------------------------------------------
# Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("index")
    g.add_argument("--splits", nargs="+", default=None, metavar="SPLIT",
                   help="split keys of dataset_info.pkl (default: train val test)")
    g.add_argument("--allow-empty-splits", action="store_const", const=True, default=None,
                   help="write a split with no videos instead of failing")
    g.add_argument("--require", nargs="+", default=None, metavar="MODALITY",
                   help="modalities every video must have, e.g. video vggish bert EXPR_continuous_label")
    g.add_argument("--keep-failed", dest="exclude_failed", action="store_const", const=False, default=None,
                   help="index videos a stage recorded as failed (their arrays are still checked)")
    g.add_argument("--check-finite", action="store_const", const=True, default=None,
                   help="also scan every float array for NaN/inf (reads all data)")
    g.add_argument("--no-split-files", dest="split_files", action="store_const", const=False, default=None,
                   help="do not write <out>/split/{train,val,test}.txt + class_id.yaml for the indexed videos")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = parser.add_argument_group("data prepared with the original feature extraction")
    g.add_argument("--from-parts", default=None, metavar="FEATURES_DIR",
                   help="merge the original's dataset_info_<ds>_<split>_<P>_<p>.pkl files found in FEATURES_DIR "
                        "(its <data_folder>/<trial>/ arrays are checked) instead of reading the manifest")
    g.add_argument("--ds", default="BAH_DB", help="dataset name in the part file names (default BAH_DB)")


def overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    return {
        "index.splits": list(args.splits) if args.splits else None,
        "index.allow_empty_splits": args.allow_empty_splits,
        "index.require": list(args.require) if args.require else None,
        "index.exclude_failed": args.exclude_failed,
        "index.check_finite": args.check_finite,
        "index.split_files": args.split_files,
    }


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args
    from bah.stages.manifest import load_manifest

    cfg = config_from_args(args, sections=[STAGE], overrides=overrides_from_args(args))
    ic: IndexConfig = cfg[STAGE]
    if args.from_parts:
        return _run_from_parts(Path(args.from_parts), args.ds, cfg.out, ic)
    try:
        records = load_manifest(cfg.out)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    cfg.save(stage_dir(cfg.out, STAGE) / "config.yaml")
    result = build_index(cfg.out, records, ic, progress=not args.no_progress)
    for row in result.excluded:
        print(f"  excluded {row['video_id']} ({row['split']}): {row['reason']}")
    try:
        pkl, js = write_index(cfg.out, result, split_files=ic.split_files)
    except IndexValidationError as exc:
        print(f"bah index: {exc}")
        return 1
    for s, facts in result.index["splits"].items():
        print(f"  {s}: {facts['videos']} videos, {facts['frames']} frames, {facts['participants']} participants, "
              f"{facts['positives']} positive")
    for w in result.index["warnings"]:
        print(f"  warning {w['video_id']}: {w['warning']}")
    print(f"index: wrote {pkl} and {js} ({len(result.excluded)} excluded, {len(result.index['warnings'])} warnings)")
    return 0


def _run_from_parts(features_dir: Path, dataset: str, out: Path, ic: IndexConfig) -> int:
    try:
        info = merge_part_infos(features_dir, dataset, ic.splits)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    problems = check_part_infos(features_dir, info, ic.require)
    if problems:
        print(f"bah index: {IndexValidationError(problems)}")
        return 1
    pkl = write_dataset_info(out, info)
    for s, d in info.items():
        print(f"  {s}: {len(d['trial'])} videos, {sum(d['length'])} frames")
    print(f"index: wrote {pkl} from the part files in {features_dir}")
    return 0
