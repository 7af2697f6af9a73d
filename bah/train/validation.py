"""Check every input array of a training run before the run folder exists.

A NaN in a test-split feature, a wrong column count, a file that is not a ``.npy``, or a
modality name that matches no file used to surface as a traceback after hours of training
(or after an empty run folder was created). Here every array of every split the run reads
is opened memory-mapped: it must exist (except optional modalities under ``--compat``,
which the original replaced by zeros), be a numeric ``.npy``, have the index's row count, the
same trailing shape in every video, and (floating point) only finite values. All problems
are reported at once, each naming its file; ``bench/validate.py`` measures the cost.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.core.layout import LABEL_MODALITY as LABEL
from bah.train.dataset import DataError, VideoRecord, load_index, split_records

log = logging.getLogger(__name__)

MAX_LISTED = 20
_CHUNK_BYTES = 64 << 20  # finiteness is checked in slices of this size: memory stays flat


def _finite(a: np.ndarray) -> bool:
    rows = max(1, _CHUNK_BYTES // max(1, a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))))
    return all(np.isfinite(a[i:i + rows]).all() for i in range(0, len(a), rows))


def _shape_problem(m: str, a: np.ndarray) -> Optional[str]:
    if m == "video":
        if a.ndim != 4 or a.shape[3] != 3:
            return f"faces must be (N, S, S, 3), found {a.shape}"
    elif m == LABEL:
        if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] != 1):
            return f"labels must be (N,) or (N, 1), found {a.shape}"
    elif a.ndim not in (1, 2):
        return f"features must be (N, D), found {a.shape}"
    return None


def check_arrays(videos: Sequence[VideoRecord], modalities: Sequence[str], compat: bool = False) -> List[str]:
    """Problems of the videos' arrays, each naming its file (empty list: all good)."""
    names = [m for m in modalities if m != LABEL] + [LABEL]
    problems: List[str] = []
    missing: Dict[str, List[Path]] = {m: [] for m in names}
    tails: Dict[str, Dict[Tuple[int, ...], List[Tuple[Path, Tuple[int, ...]]]]] = {m: {} for m in names}
    for v in videos:
        for m in names:
            f = v.folder / f"{m}.npy"
            if not f.is_file():
                missing[m].append(f)
                continue
            try:
                a = np.load(f, mmap_mode="r", allow_pickle=False)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported with its name
                problems.append(f"{f}: not a readable .npy array ({type(exc).__name__}: {exc})")
                continue
            if a.dtype.kind not in "fiub":
                problems.append(f"{f}: dtype {a.dtype} is not numeric")
                continue
            bad_shape = _shape_problem(m, a)
            if bad_shape:
                problems.append(f"{f}: {bad_shape}")
                continue
            if len(a) != v.length:
                problems.append(f"{f}: {len(a)} rows, the index says {v.length} for video {v.video_id}")
            tails[m].setdefault(tuple(a.shape[1:]) if m != LABEL else (), []).append((f, tuple(a.shape)))
            if a.dtype.kind == "f" and not _finite(a):
                problems.append(f"{f}: NaN or inf values")
            del a  # its descriptor closes here, whatever the number of videos
    for m, by_tail in tails.items():
        if len(by_tail) > 1:  # the shape most videos have is taken as right
            common = max(by_tail, key=lambda t: len(by_tail[t]))
            example = by_tail[common][0][0]
            problems.extend(f"{f}: shape {shape} has trailing dims {t}; {len(by_tail[common])} other file(s) "
                            f"have {common}, e.g. {example}"
                            for t, files in by_tail.items() if t != common for f, shape in files)
    for m, files in missing.items():
        if not files or (compat and m not in ("video", LABEL) and len(files) < len(videos)):
            continue  # --compat: the original trained on zeros for a missing optional feature
        if len(files) == len(videos):
            present = sorted(p.stem for p in videos[0].folder.glob("*.npy")) if videos else []
            problems.insert(0, f"modality {m!r}: no {m}.npy in any of the {len(videos)} videos "
                               f"(e.g. {files[0]}); the first video has {present}")
        else:
            problems.extend(f"{f}: missing" for f in files)
    return problems


def input_problems(o: Any) -> Optional[str]:
    """Every problem of the run's inputs as one message, or None; logs the time it took."""
    t0 = time.perf_counter()
    root = Path(o.dataset_path)
    split_dir = Path(o.split_dir) if o.split_dir else None
    try:
        index = load_index(root)
        splits = list(dict.fromkeys(("train", "val", "test", *o.stats_splits)))
        records = {s: split_records(root, s, split_dir, index) for s in splits}
    except DataError as exc:
        return str(exc)
    videos: Dict[Path, VideoRecord] = {}
    for recs in records.values():
        for r in recs:
            videos.setdefault(r.folder, r)
    problems = check_arrays(list(videos.values()), o.feature_modalities, o.compat)
    log.info("inputs checked: %d videos x %d arrays in %.1f s", len(videos), len(o.feature_modalities) + 1,
             time.perf_counter() - t0)
    if "video" in o.feature_modalities and not (o.use_pretrained_w or getattr(o, "visual_backbone_path", None)):
        log.warning("*** the video modality trains its face backbone from random weights (no --use_pretrained_w, "
                    "no --visual_backbone_path): expect far worse results than the paper's ***")
    if not problems:
        return None
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return (f"{len(problems)} problem(s) in the input arrays under {root} (nothing was written):\n  "
            + "\n  ".join(problems[:MAX_LISTED]) + more)


def check_before_run(o: Any, info: Any) -> None:
    """Rank 0 checks, every rank stops on the same message (DDP ranks must not diverge)."""
    from bah.train.distributed import broadcast_object

    problem = broadcast_object(input_problems(o) if info.is_main else None, info)
    if problem:
        raise DataError(problem)
