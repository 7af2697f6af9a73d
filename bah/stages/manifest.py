"""The manifest: one row per video of the split files, with the facts PyAV decodes from it.

``out/manifest.jsonl`` is what every later stage iterates over. Its ``n_frames`` (frames
actually decoded, not the container's claim) is the frame count N of every per-video
array. A video that cannot be used (missing, unreadable, truncated, no frames) is a row with
``error`` set, so one bad file never stops the manifest and later stages can list it.

Each usable video's frame presentation times are written next to the manifest
(``stages/manifest/frame_times/<video id>.npy``, float64 seconds; the row's ``frame_times``
names it): later stages map frames to time with them (``bah.core.media.frame_times``), so a
variable-frame-rate file (``vfr`` true) gets its rows at the right times.

Decoding every frame is the slow part, so a rebuild re-uses the facts of rows whose file
size and modification time did not change (``--force`` decodes everything again).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from bah.core.progress import progress_bar

from bah.core.config import ConfigError, section
from bah.data import SPLIT_NAMES, Release, annotation_frame_counts, parse_video_id
from bah.core.files import read_jsonl, save_npy, write_jsonl
from bah.core.layout import frame_times_path, manifest_path, stage_dir

__all__ = ["VideoRecord", "ManifestConfig", "build_manifest", "load_manifest", "record_times", "add_arguments", "run"]

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


@section("manifest")
@dataclass(frozen=True)
class ManifestConfig:
    workers: int = 1  # processes decoding videos in parallel
    splits: Tuple[str, ...] = ()  # only these splits; empty: every split file present

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        unknown = sorted(set(self.splits) - set(SPLIT_NAMES))
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; known: {list(SPLIT_NAMES)}")


# MediaInfo facts copied into each row (bah.core.media.MediaInfo field names).
MEDIA_FIELDS = (
    "n_frames", "avg_fps", "real_fps", "duration", "width", "height", "rotation", "vfr",
    "has_audio", "audio_rate", "audio_duration", "codec", "container_frames", "decode_errors",
)


# A file whose index lists many more frames than decode is truncated (the index of an mp4
# with the index at the front survives a cut). A few frames of slack: decoders may drop a
# broken first frame, and some muxers miscount by one or two.
TRUNCATION_FRACTION = 0.05
TRUNCATION_MIN_FRAMES = 2


@dataclass(frozen=True)
class VideoRecord:
    video_id: str
    split: str
    participant: Optional[str]
    question: Optional[int]
    label: Optional[int]  # None: unlabelled (private test set)
    transcript: str
    path: str  # absolute path of the video file
    size: Optional[int] = None  # bytes; with mtime_ns, decides whether a rebuild may re-use the row
    mtime_ns: Optional[int] = None
    n_frames: Optional[int] = None  # frames decoded: THE frame count N of every later stage
    avg_fps: Optional[float] = None
    real_fps: Optional[float] = None
    duration: Optional[float] = None
    width: Optional[int] = None  # after rotation
    height: Optional[int] = None
    rotation: Optional[int] = None
    vfr: Optional[bool] = None
    has_audio: Optional[bool] = None
    audio_rate: Optional[int] = None
    audio_duration: Optional[float] = None
    codec: Optional[str] = None
    container_frames: Optional[int] = None
    decode_errors: Optional[int] = None
    annotation_frames: Optional[int] = None  # frames listed in the annotation YAML (None: not annotated)
    annotation_mismatch: bool = False  # annotation_frames differs from n_frames
    error: Optional[str] = None  # why the video cannot be used; None for usable videos
    frame_times: Optional[str] = None  # per-frame times file, relative to the output folder (None: not recorded)
    extra: Dict[str, Any] = field(default_factory=dict)  # facts of a newer bah.core.media this version does not know

    @property
    def id(self) -> str:
        return self.video_id

    @property
    def ok(self) -> bool:
        return self.error is None

    def times(self, out: PathLike, compat: bool = False):
        """(N,) float64 seconds of each frame (``record_times``)."""
        return record_times(self, out, compat)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update({k: v for k, v in extra.items() if k not in d})
        return d

    @classmethod
    def from_dict(cls, row: Dict[str, Any], where: str = "manifest") -> "VideoRecord":
        row = dict(row)
        if "video_id" not in row and "id" in row:
            row["video_id"] = row.pop("id")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("video_id", "split", "path") if k not in row]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        extra = {k: row.pop(k) for k in list(row) if k not in names}
        return cls(**row, extra=extra)


def record_times(rec: Any, out: PathLike, compat: bool = False):
    """(N,) float64 seconds of each frame of a manifest row: ``bah.core.media.frame_times`` on
    the times file the row names (or the default place for it)."""
    from bah.core.media import frame_times

    name = getattr(rec, "frame_times", None)
    recorded = Path(out) / name if name else frame_times_path(out, rec.video_id)
    fps = getattr(rec, "avg_fps", None) or getattr(rec, "real_fps", None) or 0.0
    return frame_times(int(rec.n_frames or 0), fps, recorded, compat=compat, where=rec.video_id)


def _stat(path: Path) -> Tuple[Optional[int], Optional[int]]:
    try:
        st = path.stat()
    except OSError:
        return None, None
    return int(st.st_size), int(st.st_mtime_ns)


Probed = Tuple[Dict[str, Any], Optional[str], Any]


def _probe_one(path: str) -> Probed:
    """Decode one file: (media facts, error or None, frame times). Never raises, so a pool keeps going."""
    from bah.core.media import MediaError, probe_times

    try:
        info, times = probe_times(path)
    except MediaError as exc:
        return {}, str(exc), None
    except Exception as exc:  # any decoder failure is this video's problem, not the batch's
        return {}, f"{path}: {type(exc).__name__}: {exc}", None
    facts = info.to_dict()
    error = None
    n, listed = int(facts.get("n_frames") or 0), int(facts.get("container_frames") or 0)
    if facts.get("decode_errors"):
        error = f"{path}: decoding stopped after {n} frames (truncated or corrupt file)"
    elif listed and listed - n > max(TRUNCATION_MIN_FRAMES, TRUNCATION_FRACTION * listed):
        error = f"{path}: decoded {n} of the {listed} frames the container lists (truncated file?)"
    return facts, error, times


def _probe_all(paths: List[str], workers: int) -> Dict[str, Probed]:
    results: Dict[str, Probed] = {}
    bar = progress_bar(total=len(paths), desc="manifest: decoding", unit="video", disable=not paths)
    try:
        if workers <= 1 or len(paths) <= 1:
            for p in paths:
                results[p] = _probe_one(p)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(paths))) as pool:
                futures = {pool.submit(_probe_one, p): p for p in paths}
                for fut in as_completed(futures):
                    p = futures[fut]
                    try:
                        results[p] = fut.result()
                    except Exception as exc:  # a worker that died (e.g. killed for memory)
                        results[p] = ({}, f"{p}: worker failed: {type(exc).__name__}: {exc}", None)
                    bar.update(1)
    finally:
        bar.close()
    return results


def _previous(out: PathLike) -> Dict[str, VideoRecord]:
    path = manifest_path(out)
    if not path.is_file():
        return {}
    try:
        return {r.video_id: r for r in load_manifest(out)}
    except ValueError as exc:  # a damaged manifest is rebuilt from scratch, not trusted
        log.warning("ignoring the existing manifest (%s)", exc)
        return {}


def build_manifest(
    data_root: PathLike,
    out: PathLike,
    splits: Optional[Sequence[str]] = None,
    workers: int = 1,
    force: bool = False,
) -> List[VideoRecord]:
    """Build ``out/manifest.jsonl`` for the videos of ``splits`` (default: every split present)."""
    release = Release(data_root)
    if not release.split_files:
        raise FileNotFoundError(f"no split files (train/val/test.txt) under {release.root}: looked in split/, "
                                f"folds/BAH_DB/split-0/, folds/split-0/ and the folder itself")
    names = release.splits if not splits else list(splits)
    entries = release.entries(names)  # raises naming the split file that is missing or malformed

    ann_counts: Dict[str, int] = {}
    if release.annotation_path is not None:
        try:
            ann_counts = annotation_frame_counts(release.annotation_path)
        except (ValueError, OSError) as exc:
            log.error("annotation frame counts unavailable: %s", exc)

    previous = {} if force else _previous(out)
    base: List[Dict[str, Any]] = []
    seen: Dict[str, str] = {}
    for split, rows in entries.items():
        for e in rows:
            if e.video_id in seen:
                log.warning("%s:%d: video %r is already in split %r; keeping the first", release.split_path(split),
                            e.lineno, e.video_id, seen[e.video_id])
                continue
            seen[e.video_id] = split
            row: Dict[str, Any] = dict(video_id=e.video_id, split=split, label=e.label, transcript=e.transcript,
                                       participant=None, question=None, error=None)
            try:
                name = parse_video_id(e.video_id)
                row.update(participant=name.pid, question=name.question)
            except ValueError as exc:
                row["error"] = f"{release.split_path(split)}:{e.lineno}: {exc}"
            try:
                path = release.video_path(e.video_id)
            except ValueError as exc:
                path = release.root / "INVALID"
                row["error"] = f"{release.split_path(split)}:{e.lineno}: {exc}"
            row["path"] = str(path)
            row["size"], row["mtime_ns"] = _stat(path)
            base.append(row)

    to_probe: List[str] = []
    reused: Dict[str, Dict[str, Any]] = {}
    for row in base:
        if row["error"]:
            continue
        old = previous.get(row["video_id"])
        if (old is not None and old.ok and old.path == row["path"] and row["size"] is not None
                and old.size == row["size"] and old.mtime_ns == row["mtime_ns"]
                and old.frame_times and (Path(out) / old.frame_times).is_file()):
            reused[row["path"]] = {k: getattr(old, k) for k in MEDIA_FIELDS}
            reused[row["path"]].update(old.extra, frame_times=old.frame_times)
        else:
            to_probe.append(row["path"])
    if reused:
        log.info("re-using the decoded facts of %d unchanged videos (--force decodes them again)", len(reused))
    probed = _probe_all(to_probe, workers)

    records: List[VideoRecord] = []
    for row in base:
        if not row["error"]:
            if row["path"] in reused:
                facts, err = reused[row["path"]], None
            else:
                facts, err, times = probed[row["path"]]
                if err is None and times is not None:
                    dest = frame_times_path(out, row["video_id"])
                    save_npy(dest, times)
                    facts = dict(facts, frame_times=str(dest.relative_to(Path(out))))
            row.update(facts)
            row["error"] = err
            if err is None and row.get("vfr"):
                log.warning("%s: variable frame rate (average %.3f fps); later stages use the recorded frame "
                            "times", row["video_id"], row.get("avg_fps") or 0.0)
        ann = ann_counts.get(row["video_id"])
        row["annotation_frames"] = ann
        n = row.get("n_frames")
        row["annotation_mismatch"] = bool(ann is not None and n is not None and ann != n)
        if row["annotation_mismatch"]:
            log.warning("%s: annotation lists %d frames, %d decoded", row["video_id"], ann, n)
        if row["error"]:
            log.warning("%s", row["error"])
        records.append(VideoRecord.from_dict(row))

    _warn_overlaps(records)
    write_jsonl(manifest_path(out), (r.to_dict() for r in records))
    return records


def _warn_overlaps(records: Iterable[VideoRecord]) -> Dict[str, List[str]]:
    """Participant -> splits, for participants found in more than one split (logged)."""
    where: Dict[str, set] = defaultdict(set)
    for r in records:
        if r.participant is not None:
            where[r.participant].add(r.split)
    overlaps = {p: sorted(s, key=_split_order) for p, s in where.items() if len(s) > 1}
    if overlaps:
        listing = "; ".join(f"{p}: {'/'.join(s)}" for p, s in sorted(overlaps.items()))
        log.warning("participants in more than one split (%d): %s", len(overlaps), listing)
    return overlaps


def _split_order(name: str) -> int:
    return SPLIT_NAMES.index(name) if name in SPLIT_NAMES else len(SPLIT_NAMES)


def block_records(cfg: Any, stage: str, split: Optional[str], nblocks: Optional[int],
                  process_block: Optional[int]) -> Tuple[List["VideoRecord"], Tuple[int, int]]:
    """A block stage's start: the manifest's videos (of ``split``), which block this job runs
    (flags, else the SLURM array), and this block's copy of the stage config saved.

    Raises ConfigError (exit 2) when the manifest is missing or unreadable or the block is invalid.
    """
    from bah.core.shards import resolve_block
    from bah.core.status import block_config_name

    try:
        records = load_manifest(cfg.out)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if split:
        records = [r for r in records if r.split == split]
    try:
        block = resolve_block(nblocks, process_block)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    cfg.save(stage_dir(cfg.out, stage) / block_config_name(block[1]))
    return records, block


def load_manifest(out: PathLike) -> List[VideoRecord]:
    """Read ``out/manifest.jsonl``; errors name the file and line."""
    path = manifest_path(out)
    if not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}: run `bah manifest --data-root DIR --out {out}` first")
    records = []
    for i, row in enumerate(read_jsonl(path), 1):
        try:
            records.append(VideoRecord.from_dict(row, f"{path}: row {i}"))
        except TypeError as exc:
            raise ValueError(f"{path}: row {i}: {exc}") from None
    return records


def summarize(records: Sequence[VideoRecord]) -> str:
    """A short text table: videos, labels and errors per split, total frames and hours."""
    lines = [f"{'split':<8}{'videos':>8}{'pos':>6}{'neg':>6}{'unlab':>7}{'errors':>8}{'frames':>10}{'hours':>8}"]
    by_split: Dict[str, List[VideoRecord]] = defaultdict(list)
    for r in records:
        by_split[r.split].append(r)
    tot = Counter()
    for split in sorted(by_split, key=_split_order):
        rs = by_split[split]
        ok = [r for r in rs if r.ok]
        c = Counter(videos=len(rs), pos=sum(r.label == 1 for r in rs), neg=sum(r.label == 0 for r in rs),
                    unlab=sum(r.label is None for r in rs), errors=len(rs) - len(ok),
                    frames=sum(int(r.n_frames or 0) for r in ok))
        secs = sum(float(r.duration or 0.0) for r in ok)
        tot.update(c)
        tot["secs"] += secs
        lines.append(f"{split:<8}{c['videos']:>8}{c['pos']:>6}{c['neg']:>6}{c['unlab']:>7}{c['errors']:>8}"
                     f"{c['frames']:>10}{secs / 3600:>8.2f}")
    lines.append(f"{'total':<8}{tot['videos']:>8}{tot['pos']:>6}{tot['neg']:>6}{tot['unlab']:>7}{tot['errors']:>8}"
                 f"{tot['frames']:>10}{tot['secs'] / 3600:>8.2f}")
    vfr = sum(bool(r.vfr) for r in records if r.ok)
    if vfr:
        lines.append(f"{vfr} variable-frame-rate video(s): frame times recorded, later stages use them")
    mism = sum(r.annotation_mismatch for r in records)
    if mism:
        lines.append(f"{mism} video(s) whose annotation frame count differs from the decoded count")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("manifest")
    g.add_argument("--splits", nargs="+", choices=list(SPLIT_NAMES), default=None,
                   help="only these splits (default: every split file present)")
    g.add_argument("--workers", type=int, default=None, help="processes decoding videos in parallel (default 1)")
    g.add_argument("--force", action="store_true", help="decode every video again, even unchanged ones")


def run(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args

    cfg = config_from_args(args, sections=["manifest"], overrides={
        "manifest.workers": args.workers,
        "manifest.splits": list(args.splits) if args.splits else None,
    })
    mc: ManifestConfig = cfg["manifest"]
    data_root = cfg.require_data_root()
    try:
        records = build_manifest(data_root, cfg.out, splits=list(mc.splits) or None, workers=mc.workers,
                                 force=bool(args.force))
    except (FileNotFoundError, ValueError) as exc:  # split files: the message names the file and line
        raise ConfigError(str(exc)) from None
    cfg.save(stage_dir(cfg.out, "manifest") / "config.yaml")
    failures = [{"video_id": r.video_id, "split": r.split, "reason": r.error} for r in records if not r.ok]
    write_jsonl(stage_dir(cfg.out, "manifest") / "failures.jsonl", failures)
    print(f"manifest: {manifest_path(cfg.out)}")
    print(summarize(records))
    if failures:
        print(f"{len(failures)} video(s) cannot be used; see {stage_dir(cfg.out, 'manifest') / 'failures.jsonl'}")
    return 1 if failures else 0
