"""Where every stage reads and writes, relative to the output folder ``--out``.

The per-video layout is the original trainer's: ``<out>/features/compacted_48/<video id>/``
holding ``video.npy``, ``vggish.npy``, ``bert.npy``, ``EXPR_continuous_label.npy``, ...,
and ``<out>/dataset_info.pkl``. A video id is the split-file id
(``Videos/<pid>/Visite_1/<file>.mp4``), so the folder is nested exactly as the original's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

PathLike = Union[str, Path]

DATA_FOLDER = "compacted_48"
MANIFEST = "manifest.jsonl"
DATASET_INFO = "dataset_info.pkl"
INDEX_JSON = "dataset_index.json"
# The per-frame label array is stored and listed in --modality like a feature, under this name.
LABEL_MODALITY = "EXPR_continuous_label"


def features_root(out: PathLike) -> Path:
    return Path(out) / "features" / DATA_FOLDER


def _safe(video_id: str) -> str:
    parts = Path(video_id).parts
    if not parts or Path(video_id).is_absolute() or ".." in parts:
        raise ValueError(f"unsafe video id {video_id!r}")
    return video_id


def video_dir(out: PathLike, video_id: str) -> Path:
    """Folder of one video's arrays. Rejects ids that would escape the output folder."""
    return features_root(out) / _safe(video_id)


def frame_times_path(out: PathLike, video_id: str) -> Path:
    """The manifest's record of one video's frame times: (N,) float64 seconds."""
    return stage_dir(out, "manifest") / "frame_times" / (_safe(video_id) + ".npy")


def video_key(video_id: str) -> str:
    """A video id as one flat file name: ``/`` becomes ``__``, the ``.mp4`` is kept.

    Used by the video-level outputs (``<out>/video_features/<name>/<key>.npz``,
    ``<out>/transcripts/<key>.json``), where one folder holds every video.
    """
    parts = Path(video_id).parts
    if not parts or Path(video_id).is_absolute() or ".." in parts:
        raise ValueError(f"unsafe video id {video_id!r}")
    return video_id.replace("/", "__")


def transcripts_root(out: PathLike) -> Path:
    return Path(out) / "transcripts"


def transcript_path(out: PathLike, video_id: str) -> Path:
    """``<out>/transcripts/<key>.json`` written by ``bah transcribe``."""
    return transcripts_root(out) / f"{video_key(video_id)}.json"


def video_features_dir(out: PathLike, name: str) -> Path:
    """``<out>/video_features/<extractor>``: one ``<key>.npz`` per video and ``meta.json``."""
    return Path(out) / "video_features" / name


def manifest_path(out: PathLike) -> Path:
    return Path(out) / MANIFEST


def dataset_info_path(out: PathLike) -> Path:
    return Path(out) / DATASET_INFO


def stage_dir(out: PathLike, stage: str) -> Path:
    """Bookkeeping of one stage (status records, failure lists, resolved config, logs)."""
    return Path(out) / "stages" / stage
