"""``bah labels``: per-frame A/H labels, ``EXPR_continuous_label.npy`` (N,) float32 per video.

The feature stage of the original wrote the *video* label into every frame; the frame-level
task needs the annotators' per-frame labels, which the original copied over that file in a
separate script (``set_frame_labels.py``). This stage does the same from the release's
annotation YAML (or the frame-level split files), with the differences that matter:

- the frame count N is the manifest's decoded count; an annotation a few frames longer or
  shorter (container frame counts differ from decoded ones) is resampled over time by
  nearest neighbour with a warning, a larger difference is an error naming the video;
- the video label stays available separately (manifest, ``stages/labels/labels.jsonl``);
- the file that was there before (the video label broadcast, or frame labels made by other
  code) is kept as ``EXPR_continuous_label.npy.bak``: a name training never reads;
- videos without annotation (a private test set) get the video label repeated, or nothing,
  as configured; one bad video never stops the run, it lands in the failure list;
- an annotation entry without ``frame_annotation`` gets its frame labels from its A/H
  intervals (``time_detailed_ah`` against the manifest's recorded frame times, else
  ``fr_detailed_ah``); an entry with neither fails naming the video, unless
  ``incomplete`` says what it gets. Both are counted in the summary as repairs.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bah.core.config import ConfigError, section
from bah.core.files import config_hash, save_npy, write_bytes, write_jsonl
from bah.core.layout import LABEL_MODALITY, stage_dir, video_dir
from bah.core.registry import Registry
from bah.core.status import StageStatus

log = logging.getLogger(__name__)

STAGE = "labels"
LABEL_FILE = f"{LABEL_MODALITY}.npy"
BACKUP_SUFFIX = ".bak"

# Where per-frame labels come from (one entry per kind of source).
LABEL_SOURCES: Registry = Registry("label source")
# What an unannotated video gets: a function (record, n) -> labels or None (write nothing).
UNANNOTATED: Registry = Registry("unannotated-video policy")


class LabelError(ValueError):
    """A video's labels cannot be written; the message names the video."""


@section("labels")
@dataclass(frozen=True)
class LabelConfig:
    source: str = "annotation"  # LABEL_SOURCES name
    annotation: Optional[Path] = None  # annotation YAML; default: found in the release (either file name)
    max_resample_frames: int = 5  # |annotated - N| up to this is resampled with a warning; more is an error
    unannotated: str = "video_label"  # UNANNOTATED name: what videos without annotation get
    # UNANNOTATED name: what an entry with neither frame_annotation nor A/H intervals gets
    incomplete: str = "fail"
    backup: bool = True  # keep the previous label file as EXPR_continuous_label.npy.bak
    splits: Tuple[str, ...] = ()  # only these splits (empty: every split of the manifest)

    def __post_init__(self):
        if self.max_resample_frames < 0:
            raise ValueError(f"max_resample_frames must be >= 0, got {self.max_resample_frames}")
        if self.source not in LABEL_SOURCES:
            raise ValueError(f"unknown label source {self.source!r}; known: {LABEL_SOURCES.list()}")
        for name in (self.unannotated, self.incomplete):
            if name not in UNANNOTATED:
                raise ValueError(f"unknown unannotated policy {name!r}; known: {UNANNOTATED.list()}")


@dataclass(frozen=True)
class SourceLabels:
    """What a source knows about one video: per-frame 0/1 labels and the global (video) label.

    ``frames`` is None for an annotation entry without ``frame_annotation``: the labels then
    come from its A/H intervals (seconds, else inclusive frame indices), see ``interval_labels``.
    """

    frames: Optional[np.ndarray]
    global_label: Optional[int] = None
    intervals_seconds: Tuple[Tuple[float, float], ...] = ()
    intervals_frames: Tuple[Tuple[int, int], ...] = ()


# ----------------------------------------------------------------------------------------
# Sources


class LabelSource:
    """Per-frame labels of the videos it knows; ``get`` returns None for a video it has none for."""

    def __init__(self, cfg: LabelConfig, data_root: Optional[Path], video_ids: Optional[Sequence[str]] = None):
        self.cfg = cfg
        self.data_root = data_root
        self.video_ids = None if video_ids is None else list(video_ids)

    def get(self, record: Any) -> Optional[SourceLabels]:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


def _release(data_root: Optional[Path]):
    from bah.data import Release

    if data_root is None:
        raise ConfigError("the label source needs the dataset folder: pass --data-root or set BAH_DATA_ROOT")
    return Release(data_root)


@LABEL_SOURCES.register("annotation")
class AnnotationSource(LabelSource):
    """``frame_annotation`` of ``video_annotation_transcript.yaml`` (or ``video_annotation.yaml``)."""

    def __init__(self, cfg: LabelConfig, data_root: Optional[Path], video_ids: Optional[Sequence[str]] = None):
        super().__init__(cfg, data_root, video_ids)
        from bah.data import load_yaml

        path = cfg.annotation
        if path is None:
            path = _release(data_root).annotation_path
            if path is None:
                raise ConfigError(
                    f"no annotation YAML (video_annotation_transcript.yaml / video_annotation.yaml) "
                    f"under {data_root}; pass --annotation FILE or use --source video")
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"annotation file not found: {self.path}")
        log.info("reading frame annotations from %s", self.path)
        try:
            raw = load_yaml(self.path) or {}
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{self.path}: the top level must map video id -> annotation")
        # Parsed per video when asked, so one malformed entry fails that video only.
        self.raw = {str(k): v for k, v in raw.items()}

    def get(self, record: Any) -> Optional[SourceLabels]:
        from bah.data import parse_annotation

        raw = self.raw.get(record.video_id)
        if raw is None:
            return None
        ann = parse_annotation(record.video_id, raw, str(self.path))
        if ann.frame_labels.size == 0:  # listed without frame labels: the intervals say which frames
            return SourceLabels(None, ann.global_label, ann.intervals_seconds, ann.intervals_frames)
        return SourceLabels(np.asarray(ann.frame_labels), ann.global_label)

    def describe(self) -> str:
        return f"annotation YAML {self.path} ({len(self.raw)} videos)"


@LABEL_SOURCES.register("split_frames")
class SplitFramesSource(LabelSource):
    """The release's frame-level split files ``split-frames/<split>.txt`` (``<id>/frame-<i>.jpg,<0|1>``)."""

    def __init__(self, cfg: LabelConfig, data_root: Optional[Path], video_ids: Optional[Sequence[str]] = None):
        super().__init__(cfg, data_root, video_ids)
        from bah.data import load_frame_split

        release = _release(data_root)
        self.items: Dict[str, np.ndarray] = {}
        paths = [p for p in release.frame_split_paths().values()]
        if not paths:
            raise ConfigError(f"no frame-level split files (split-frames/*.txt) under {data_root}")
        for path in paths:
            try:
                self.items.update({vid: np.asarray(lab) for vid, lab in load_frame_split(path).items()})
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.paths = paths

    def get(self, record: Any) -> Optional[SourceLabels]:
        frames = self.items.get(record.video_id)
        return None if frames is None else SourceLabels(frames, None)

    def describe(self) -> str:
        return f"frame-level split files {[str(p) for p in self.paths]} ({len(self.items)} videos)"


@LABEL_SOURCES.register("video")
class VideoLabelSource(LabelSource):
    """The video label repeated over every frame: the state the paper's video-level runs trained on."""

    def get(self, record: Any) -> Optional[SourceLabels]:
        if record.label is None:
            return None
        return SourceLabels(np.full(int(record.n_frames or 0), int(record.label)), int(record.label))

    def describe(self) -> str:
        return "video label repeated over the frames"


@UNANNOTATED.register("video_label")
def _unannotated_video_label(record: Any, n: int) -> Optional[np.ndarray]:
    if record.label is None:
        return None
    return np.full(n, float(record.label), dtype=np.float32)


@UNANNOTATED.register("skip")
def _unannotated_skip(record: Any, n: int) -> Optional[np.ndarray]:
    return None


@UNANNOTATED.register("fail")
def _unannotated_fail(record: Any, n: int) -> Optional[np.ndarray]:
    raise LabelError(f"{record.video_id}: no frame labels")


# The annotation's HH:MM:SS.mmm times are rounded to the millisecond: a frame that starts
# exactly on an interval edge may sit up to half a millisecond on either side of it.
TIME_RESOLUTION_S = 0.001


def interval_labels(times: np.ndarray, intervals_seconds=(), intervals_frames=()) -> np.ndarray:
    """(N,) float32 0/1 labels of frames inside the A/H intervals.

    Seconds are half-open [start, end) and compared with each frame's presentation time
    ``times`` (so a variable-frame-rate video gets the frames the annotator saw); without
    them, ``fr_detailed_ah`` inclusive frame indices are used as given.
    """
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.shape[0], np.float32)
    if intervals_seconds:
        h = TIME_RESOLUTION_S / 2
        for start, end in intervals_seconds:
            out[(times >= start - h) & (times < end - h)] = 1.0
    else:
        for start, end in intervals_frames:
            out[max(0, int(start)):max(0, int(end) + 1)] = 1.0
    return out


# ----------------------------------------------------------------------------------------
# Core


def resample_nearest(labels: np.ndarray, n: int) -> np.ndarray:
    """Nearest-neighbour resampling of a per-frame sequence to ``n`` frames over the same time span.

    Output frame i covers [i/n, (i+1)/n) of the clip; it takes the source frame whose span holds
    that interval's centre, so a constant shift never accumulates along the video.
    """
    labels = np.asarray(labels)
    m = len(labels)
    if n < 0 or m == 0:
        raise ValueError(f"cannot resample {m} labels to {n} frames")
    if m == n:
        return labels.copy()
    src = np.floor((np.arange(n) + 0.5) * (m / n)).astype(np.int64)
    return labels[np.clip(src, 0, m - 1)]


def conform_labels(labels: np.ndarray, n: int, max_resample: int, video_id: str) -> Tuple[np.ndarray, bool]:
    """Validate one video's frame labels against N: (float32 (N,) labels, resampled?)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise LabelError(f"{video_id}: frame labels must be one value per frame, got shape {labels.shape}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        bad = sorted(set(np.unique(labels).tolist()) - {0, 1})[:5]
        raise LabelError(f"{video_id}: frame labels must be 0 or 1, found {bad}")
    m = len(labels)
    if n <= 0:
        raise LabelError(f"{video_id}: the manifest has no frames for this video (N={n})")
    if m == 0:
        raise LabelError(f"{video_id}: the annotation has no frames")
    if m == n:
        return labels.astype(np.float32), False
    if abs(m - n) > max_resample:
        raise LabelError(
            f"{video_id}: the annotation has {m} frames but the video has N={n} decoded frames; "
            f"difference {abs(m - n)} > max_resample_frames={max_resample}")
    log.warning("%s: annotation has %d frames, video has %d; resampled by nearest neighbour", video_id, m, n)
    return resample_nearest(labels, n).astype(np.float32), True


def _npy_bytes_hash(path: Path) -> Optional[str]:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def write_frame_labels(folder: Path, labels: np.ndarray, backup: bool = True,
                       own_hash: Optional[str] = None) -> Dict[str, Any]:
    """Write ``folder/EXPR_continuous_label.npy`` atomically; returns facts for the status record.

    The previous file is copied to ``EXPR_continuous_label.npy.bak`` unless it is identical
    (nothing to do) or it is the file this stage itself wrote last time (``own_hash``): a
    rerun must not replace the backup of the original with its own output.
    """
    labels = np.asarray(labels, dtype=np.float32)
    dest = folder / LABEL_FILE
    facts: Dict[str, Any] = {"backup": None, "unchanged": False}
    old_hash = _npy_bytes_hash(dest)
    if old_hash is not None:
        try:
            old = np.load(dest, mmap_mode="r")
            same = old.dtype == labels.dtype and old.shape == labels.shape and np.array_equal(old, labels)
        except (ValueError, OSError):
            same = False
        if same:
            facts.update(unchanged=True, sha256=old_hash)
            return facts
        if backup and old_hash != own_hash:
            bak = folder / (LABEL_FILE + BACKUP_SUFFIX)
            write_bytes(bak, dest.read_bytes())
            facts["backup"] = str(bak)
    save_npy(dest, labels)
    facts["sha256"] = _npy_bytes_hash(dest)
    return facts


@dataclass
class LabelReport:
    written: List[Dict[str, Any]] = field(default_factory=list)
    skipped: List[Dict[str, Any]] = field(default_factory=list)  # no labels on purpose (policy, manifest error)
    failed: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def resampled(self) -> List[str]:
        return [r["video_id"] for r in self.written if r.get("resampled")]

    @property
    def repaired(self) -> List[str]:
        """Videos whose labels came from a repair (intervals instead of frame_annotation, a policy)."""
        return [r["video_id"] for r in self.written + self.skipped if r.get("repair")]


def label_videos(out: Path, records: Sequence[Any], source: LabelSource, cfg: LabelConfig,
                 progress: bool = True) -> LabelReport:
    """Write the frame labels of every manifest record; failures are recorded, never raised."""
    from bah.core.progress import progress_bar as tqdm  # obeys --no-progress, TQDM_DISABLE, log files

    # One failure list per split selection, so a run on some splits keeps the others' failures.
    block = "-".join(cfg.splits) if cfg.splits else "0"
    status = StageStatus(out, STAGE, config_hash({"labels": asdict(cfg), "source": source.describe()}), block)
    status.begin()
    report = LabelReport()
    for rec in tqdm(records, desc="labels", unit="video", disable=not progress):
        vid = rec.video_id
        row: Dict[str, Any] = {"video_id": vid, "split": rec.split, "video_label": rec.label}
        if getattr(rec, "error", None):
            row["reason"] = f"manifest error: {rec.error}"
            report.skipped.append(row)
            continue
        try:
            n = int(rec.n_frames or 0)
            got = source.get(rec)
            if getattr(rec, "vfr", False):
                row["vfr"] = True  # labels from intervals use the recorded frame times
            if got is not None and got.frames is None:
                got = _from_intervals(out, rec, got, cfg, row)
                if got is None:
                    row["reason"] = row["repair"]
                    report.skipped.append(row)
                    continue
            if got is None:
                labels = UNANNOTATED.get(cfg.unannotated)(rec, n)
                if labels is None:
                    row["reason"] = (f"no annotation; policy {cfg.unannotated!r}"
                                     + ("" if rec.label is not None or cfg.unannotated == "skip"
                                        else " and no video label"))
                    report.skipped.append(row)
                    continue
                row.update(origin="video_label", annotated_frames=None, resampled=False)
            else:
                labels, resampled = conform_labels(got.frames, n, cfg.max_resample_frames, vid)
                row.update(origin=cfg.source, annotated_frames=int(len(got.frames)), resampled=resampled,
                           global_label=got.global_label)
                if got.global_label is not None and rec.label is not None and int(got.global_label) != int(rec.label):
                    log.warning("%s: annotation global label %s differs from the split label %s",
                                vid, got.global_label, rec.label)
                    row["label_disagreement"] = True
            prev = status.record(vid) or {}
            facts = write_frame_labels(video_dir(out, vid), labels, backup=cfg.backup,
                                       own_hash=prev.get("sha256") if prev.get("status") == "done" else None)
            row.update(n_frames=n, ah_frames=int(labels.sum()), ah_fraction=float(labels.mean()), **facts)
            status.mark_done(vid, **{k: v for k, v in row.items() if k != "video_id"})
            report.written.append(row)
        except Exception as exc:  # noqa: BLE001 - one bad video never stops the run
            reason = str(exc) if isinstance(exc, (LabelError, ValueError)) else f"{type(exc).__name__}: {exc}"
            if vid not in reason:
                reason = f"{vid}: {reason}"
            row["reason"] = reason
            status.mark_failed(vid, reason, split=rec.split)
            report.failed.append(row)
            log.error("%s", reason)
    status.finish(done=len(report.written), skipped=len(report.skipped), failed=len(report.failed))
    return report


def _from_intervals(out: Path, rec: Any, got: SourceLabels, cfg: LabelConfig,
                    row: Dict[str, Any]) -> SourceLabels:
    """Frame labels of an annotation entry without ``frame_annotation`` (a repair, noted in ``row``)."""
    vid = rec.video_id
    n = int(rec.n_frames or 0)
    if got.intervals_seconds or got.intervals_frames:
        from bah.stages.manifest import record_times

        frames = interval_labels(record_times(rec, out), got.intervals_seconds, got.intervals_frames)
        kind = "time_detailed_ah" if got.intervals_seconds else "fr_detailed_ah"
        log.warning("%s: no frame_annotation; %d frame labels made from %s", vid, n, kind)
        row["repair"] = f"frame labels from {kind} (no frame_annotation)"
        return SourceLabels(frames, got.global_label)
    policy = cfg.incomplete
    try:
        labels = UNANNOTATED.get(policy)(rec, n)
    except LabelError:
        raise LabelError(
            f"{vid}: the annotation entry has neither frame_annotation nor A/H intervals (fr_detailed_ah / "
            f"time_detailed_ah); choose what such videos get with --incomplete "
            f"{'|'.join(k for k in UNANNOTATED.list() if k != 'fail')}") from None
    row["repair"] = f"no frame_annotation nor intervals: policy {policy!r}"
    return None if labels is None else SourceLabels(labels, got.global_label)


# ----------------------------------------------------------------------------------------
# Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("labels")
    g.add_argument("--source", choices=LABEL_SOURCES.list(), default=None,
                   help="where frame labels come from (default: annotation)")
    g.add_argument("--annotation", default=None, metavar="FILE.yaml",
                   help="annotation YAML (default: video_annotation_transcript.yaml in the data root)")
    g.add_argument("--max-resample-frames", type=int, default=None,
                   help="largest |annotated - decoded| frame difference resampled with a warning (default 5)")
    g.add_argument("--unannotated", choices=UNANNOTATED.list(), default=None,
                   help="videos without annotation: repeat the video label, or write nothing")
    g.add_argument("--incomplete", choices=UNANNOTATED.list(), default=None,
                   help="annotation entries with neither frame_annotation nor A/H intervals (default: fail)")
    g.add_argument("--no-backup", dest="backup", action="store_const", const=False, default=None,
                   help="do not keep the previous label file as EXPR_continuous_label.npy.bak")
    g.add_argument("--splits", nargs="+", default=None, metavar="SPLIT", help="only these splits")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    return {
        "labels.source": args.source,
        "labels.annotation": args.annotation,
        "labels.max_resample_frames": args.max_resample_frames,
        "labels.unannotated": args.unannotated,
        "labels.incomplete": getattr(args, "incomplete", None),
        "labels.backup": args.backup,
        "labels.splits": list(args.splits) if args.splits else None,
    }


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args
    from bah.stages.manifest import load_manifest

    cfg = config_from_args(args, sections=[STAGE], overrides=overrides_from_args(args))
    lc: LabelConfig = cfg[STAGE]
    try:
        records = load_manifest(cfg.out)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    if lc.splits:
        unknown = sorted(set(lc.splits) - {r.split for r in records})
        if unknown:
            raise ConfigError(f"split(s) {unknown} not in the manifest {cfg.out}")
        records = [r for r in records if r.split in lc.splits]
    needs_root = lc.source != "video" and not (lc.source == "annotation" and lc.annotation)
    source = LABEL_SOURCES.create(lc.source, lc, cfg.require_data_root() if needs_root else cfg.data_root,
                                  [r.video_id for r in records])
    log.info("labels from %s for %d videos", source.describe(), len(records))
    cfg.save(stage_dir(cfg.out, STAGE) / "config.yaml")
    report = label_videos(cfg.out, records, source, lc, progress=not args.no_progress)
    write_jsonl(stage_dir(cfg.out, STAGE) / "labels.jsonl", report.written + report.skipped + report.failed)
    print(f"labels: {len(report.written)} written ({len(report.resampled)} resampled, "
          f"{sum(1 for r in report.written if r.get('unchanged'))} unchanged), "
          f"{len(report.skipped)} skipped, {len(report.failed)} failed")
    n_vfr = sum(1 for r in report.written if r.get("vfr"))
    if n_vfr:
        print(f"  {n_vfr} variable-frame-rate video(s) (labels made from intervals use their recorded frame times)")
    if report.repaired:
        print(f"  {len(report.repaired)} repaired (no frame_annotation): {', '.join(report.repaired[:5])}"
              + (" ..." if len(report.repaired) > 5 else ""))
    for row in report.skipped:
        print(f"  skipped {row['video_id']}: {row['reason']}")
    for row in report.failed:
        print(f"  FAILED  {row['video_id']}: {row['reason']}")
    return 1 if report.failed else 0
