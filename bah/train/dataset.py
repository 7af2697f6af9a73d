"""Windows over the per-video arrays, and the collate into the batch dict.

A split is a list of ``VideoRecord`` (id, folder of arrays, frame count). Arrays are opened
with ``np.load(mmap_mode="r")`` lazily in each worker process (only paths are pickled) and
kept in a small LRU cache: every memory map holds a file descriptor, and one per video and
modality would exceed the usual limit of 1,024 open files on the full release.
Items are training windows (``window_length`` frames, stride ``hop_length``, plus the tail
window) or whole videos for evaluation. Short items are padded by repeating the last row (the
original's rule) and the padded rows are marked False in ``mask`` unless the padded frames
are to be scored as the original did (``score_padded``). Faces stay uint8; the
``FaceTransform`` runs on the batch on the training device (on a CPU-only run, per window in
the loader workers: ``face_transform``).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from bah.core.layout import LABEL_MODALITY
from bah.models.base import DEFAULT_DIMS
from bah.train.normalization import Stats, normalise
from bah.train.windows import item_rows, train_items

log = logging.getLogger(__name__)

LABEL = LABEL_MODALITY
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Bad training data; the message names the video and file."""


@dataclass(frozen=True)
class VideoRecord:
    video_id: str
    folder: Path
    length: int
    label: Optional[int] = None  # video class from the split file, when known
    faces: Optional[Path] = None  # the face cache's copy of folder/video.npy at the training size


def load_index(dataset_path: Path) -> Dict[str, Dict[str, Any]]:
    """The original's dataset_info.pkl (keys train/val/test)."""
    from bah.stages.index import load_dataset_info

    try:
        return load_dataset_info(Path(dataset_path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(str(exc)) from None


def read_split_file(path: Path) -> List[Tuple[str, Optional[int]]]:
    """(video id, label or None) per line of a video-level split file (private test sets have no labels)."""
    from bah.data import read_video_split

    try:
        return [(e.video_id, e.label) for e in read_video_split(path)]
    except (OSError, ValueError) as exc:
        raise DataError(str(exc)) from None


def split_records(dataset_path: Path, split: str, split_dir: Optional[Path] = None,
                  index: Optional[Mapping] = None) -> List[VideoRecord]:
    index = index if index is not None else load_index(dataset_path)
    root = Path(dataset_path) / "features"
    trials: Dict[str, Tuple[int, str]] = {}
    for key in SPLITS:
        info = index.get(key) or {}
        for tid, n in zip(info.get("trial", []), info.get("length", [])):
            trials[str(tid)] = (int(n), str(info.get("data_folder", "compacted_48")))
    if split_dir is not None:
        wanted = read_split_file(Path(split_dir) / f"{split}.txt")
        absent = [v for v, _ in wanted if v not in trials]
        if absent:
            raise DataError(f"{Path(split_dir) / (split + '.txt')}: {len(absent)} video(s) absent from the index "
                            f"{Path(dataset_path) / 'dataset_info.pkl'}, e.g. {absent[:3]}")
        pairs = [(v, lab) for v, lab in wanted]
    else:
        info = index.get(split) or {}
        pairs = [(str(t), None) for t in info.get("trial", [])]
    recs = [VideoRecord(v, root / trials[v][1] / v, trials[v][0], lab) for v, lab in pairs]
    if not recs:
        raise DataError(f"split {split!r} is empty in {Path(dataset_path) / 'dataset_info.pkl'}"
                        + (f" / {split_dir}" if split_dir else ""))
    return recs


def video_label(rec: VideoRecord) -> int:
    if rec.label is not None:
        return int(rec.label)
    f = rec.folder / f"{LABEL}.npy"
    if not f.exists():
        raise DataError(f"{f}: missing label file of video {rec.video_id}")
    return int(np.load(f, mmap_mode="r").max() > 0)


def subsample(records: Sequence[VideoRecord], percent: float, seed: int) -> List[VideoRecord]:
    """Keep each video with probability p/100 per class (at least one per class), seeded."""
    if percent >= 100:
        return list(records)
    rng = np.random.RandomState(seed)
    by_class: Dict[int, List[int]] = {}
    for i, r in enumerate(records):
        by_class.setdefault(video_label(r), []).append(i)
    keep: List[int] = []
    for cls in sorted(by_class):
        idx = by_class[cls]
        chosen = [i for i in idx if rng.rand() < percent / 100.0]
        keep.extend(chosen or [idx[int(rng.randint(len(idx)))]])
    return [records[i] for i in sorted(keep)]


def mmap_cache_size() -> int:
    """Memory maps one process keeps open: an eighth of its open-file limit, at most 128
    (loader workers each keep their own, next to the files torch and the logs hold)."""
    global _MMAP_CACHE
    if _MMAP_CACHE is None:
        _MMAP_CACHE = max(4, min(128, _open_file_limit() // 8))
    return _MMAP_CACHE


def _open_file_limit() -> int:
    try:
        import resource
    except ImportError:  # not on POSIX
        return 1024
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1024 if soft == resource.RLIM_INFINITY else soft


_MMAP_CACHE: Optional[int] = None


class WindowDataset(Dataset):
    """Items are (video index, start, end); see the module docstring."""

    def __init__(self, videos: Sequence[VideoRecord], modalities: Sequence[str], window_length: int,
                 hop_length: int, train: bool, stats: Optional[Mapping[str, Stats]] = None, *,
                 compat: bool = False, pad_to_window: Optional[bool] = None, score_padded: Optional[bool] = None,
                 global_sup_scope: Optional[str] = None, seed: int = 0, shuffles: int = 100,
                 check: bool = True, face_transform: Optional[Callable] = None):
        self.videos = list(videos)
        # On a CPU-only run the face transform runs here, in the loader workers, instead of in
        # the training process; its random crop/flip per window is seeded by (seed, epoch, item).
        self.face_transform = face_transform
        self.seed = seed
        if not self.videos:
            raise DataError("empty split: no videos")
        self.modalities = [m for m in modalities if m != LABEL]
        self.window_length, self.hop_length, self.train = window_length, hop_length, train
        self.stats = dict(stats or {})
        self.compat = compat
        self.pad_to_window = train or (compat if pad_to_window is None else pad_to_window)
        self.score_padded = compat if score_padded is None else score_padded
        self.global_sup_scope = global_sup_scope or ("window" if compat else "video")
        if train:
            self.items = train_items([v.length for v in self.videos], window_length, hop_length, seed, shuffles)
        else:
            self.items = [(i, 0, v.length) for i, v in enumerate(self.videos)]
        self._arrays: "OrderedDict[Tuple[int, str], np.ndarray]" = OrderedDict()
        self._video_labels: Dict[int, int] = {}
        self.dims: Dict[str, Any] = {}
        if check:
            self._check()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"] = OrderedDict()  # workers reopen the memory maps themselves
        return state

    def _check(self) -> None:
        bad = []
        for vi, v in enumerate(self.videos):
            try:
                lab = self._array(vi, LABEL)
                if len(lab) != v.length:
                    raise DataError(f"video {v.video_id}: {LABEL}.npy has {len(lab)} rows, the index says {v.length}")
                for m in self.modalities:
                    a = self._array(vi, m)
                    if len(a) != v.length:
                        raise DataError(f"video {v.video_id}: {v.folder / (m + '.npy')} has {len(a)} rows, "
                                        f"{LABEL}.npy has {v.length} (arrays disagree in length)")
                    self.dims.setdefault(m, a.shape[1:] if m == "video" else int(np.prod(a.shape[1:]) or 1))
            except (DataError, OSError, ValueError) as exc:
                bad.append(str(exc))
        if bad:
            raise DataError(f"{len(bad)} bad video(s):\n  " + "\n  ".join(bad[:20]))

    def _array(self, vi: int, m: str) -> np.ndarray:
        key = (vi, m)
        a = self._arrays.get(key)
        if a is not None:
            self._arrays.move_to_end(key)
        else:
            v = self.videos[vi]
            f = v.faces if m == "video" and v.faces is not None else v.folder / f"{m}.npy"
            if not f.exists():
                if not self.compat or m in ("video", LABEL):
                    raise DataError(f"video {v.video_id}: missing feature file {f}")
                log.warning("video %s: %s missing, using zeros (compat)", v.video_id, f)
                dim = self.dims.get(m) or (DEFAULT_DIMS.get(m) or 1)
                a = np.zeros((v.length, dim), np.float32)
            else:
                try:
                    a = np.load(f, mmap_mode="r")
                except ValueError as exc:
                    raise DataError(f"video {v.video_id}: unreadable {f} ({exc})") from None
            self._arrays[key] = a
            while len(self._arrays) > mmap_cache_size():
                self._arrays.popitem(last=False)  # its descriptor closes with the last view of it
        return a

    def video_target(self, vi: int) -> int:
        if vi not in self._video_labels:
            self._video_labels[vi] = int(np.asarray(self._array(vi, LABEL)).max() > 0)
        return self._video_labels[vi]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> Dict[str, Any]:
        """``key``: an item index, or (epoch, index) from ``EpochShuffle``."""
        epoch, i = key if isinstance(key, tuple) else (0, key)
        vi, s, e = self.items[i]
        v = self.videos[vi]
        length = self.window_length if (self.pad_to_window and e - s < self.window_length) else e - s
        rows = item_rows(s, e, length)
        # slicing a contiguous range then repeating is much cheaper than fancy-indexing a memmap
        def take(a):
            block = a[s:e]
            return block if len(block) == length else np.asarray(block)[rows - s]

        inputs: Dict[str, np.ndarray] = {}
        for m in self.modalities:
            x = take(self._array(vi, m))
            if m == "video":
                inputs[m] = x  # uint8, a memory-map view when unpadded: collate reads it once, into the batch
                continue
            x = np.asarray(x).reshape(len(x), -1)
            x = normalise(x, self.stats[m], self.compat) if m in self.stats else x.astype(np.float32)
            # NaN or inf in the file stays NaN or inf after normalising, and makes the sum non-finite
            # (a read-only pass; the element-wise test only runs if the sum overflowed)
            with np.errstate(over="ignore", invalid="ignore"):
                total = x.sum()
            if not np.isfinite(total) and not np.isfinite(x).all():
                raise DataError(f"video {v.video_id}: NaN or inf in {v.folder / (m + '.npy')} frames [{s}, {e})")
            inputs[m] = x
        labels = np.asarray(take(self._array(vi, LABEL))).reshape(-1)
        if not np.isfinite(labels).all():
            raise DataError(f"video {v.video_id}: NaN or inf in {LABEL}.npy")
        target = (labels > 0.5).astype(np.int64)
        mask = np.zeros(length, bool)
        mask[: e - s] = True
        if self.score_padded:
            mask[:] = True
        gl = int(target[: e - s].max()) if self.global_sup_scope == "window" else self.video_target(vi)
        item = {"inputs": inputs, "target": target, "mask": mask, "global_target": np.full(length, gl, np.int64),
                "video_target": self.video_target(vi), "video_idx": vi, "frame_idx": rows, "video_id": v.video_id,
                "start": s, "end": e}
        if self.face_transform is not None and "video" in inputs:
            item["face_transform"] = (self.face_transform, (self.seed, epoch, i))  # applied by collate
        return item


class EpochShuffle(torch.utils.data.Sampler):
    """A random order per epoch, seeded by ``seed + epoch``: one loader (and its persistent
    workers) serves every epoch, and a resumed run replays the same order."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        # (epoch, index): the dataset seeds per-window augmentation done in its workers with it
        return iter([(self.epoch, i) for i in torch.randperm(self.n, generator=g).tolist()])


_ALIGN = 64  # bytes; a multiple of every element size


def _batch_buffer(specs: Mapping[str, Tuple[Tuple[int, ...], torch.dtype]]) -> Dict[str, torch.Tensor]:
    """Empty tensors for a whole batch carved from one storage. Inside a loader worker that
    storage is one shared-memory segment, created shared (``share_memory_()`` on a finished
    tensor would copy it): one segment per batch, not one per tensor, and the batch reaches
    the training process without another copy."""
    offsets, total = {}, 0
    for k, (shape, dt) in specs.items():
        total = -(-total // _ALIGN) * _ALIGN
        offsets[k] = total
        total += int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dt).element_size()
    total = max(total, 1)
    shared = torch.utils.data.get_worker_info() is not None
    storage = torch.UntypedStorage._new_shared(total) if shared else torch.UntypedStorage(total)
    out = {}
    for k, (shape, dt) in specs.items():
        t = torch.empty(0, dtype=dt)
        out[k] = t.set_(storage, offsets[k] // t.element_size(), shape)
    return out


def _transform_faces(samples: Sequence[Dict[str, Any]], out: torch.Tensor) -> None:
    """The face transform of each window, written straight into the batch: one read of the
    memory-mapped uint8 crops, no per-window copies. Crop and flip of a window come from a
    generator seeded by (seed, epoch, item), so they do not depend on the worker. Padding rows
    get -1, what the zero padding of uint8 faces maps to."""
    tf = samples[0]["face_transform"][0]
    for b, s in enumerate(samples):
        x = s["inputs"]["video"]
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence(list(s["face_transform"][1])).generate_state(1, np.uint64)[0])
                      % 2**63)
        with warnings.catch_warnings():  # a read-only memory map: the transform only reads it
            warnings.simplefilter("ignore", UserWarning)
            faces = torch.from_numpy(np.asarray(x))
        tf(faces[None], generator=g, out=out[b:b + 1, :len(x)])
        out[b, len(x):] = -1.0


def _torch_dtype(dt: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dt)).dtype


def collate(samples: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Pad to the longest item (mask False on the padding) and stack into one buffer per batch."""
    B, L = len(samples), max(len(s["target"]) for s in samples)
    first = samples[0]
    transform = first.get("face_transform")
    specs: Dict[str, Tuple[Tuple[int, ...], torch.dtype]] = {}
    for m, a in first["inputs"].items():
        if m == "video" and transform is not None:  # (B,L,c,c,3) in memory, (B,L,3,c,c) to the model
            specs["inputs." + m] = ((B, L, transform[0].crop, transform[0].crop, 3), torch.float32)
        else:
            specs["inputs." + m] = ((B, L) + tuple(a.shape[1:]), _torch_dtype(a.dtype))
    fills = {"mask": False, "target": 0, "global_target": 0, "frame_idx": -1}
    for k in fills:
        specs[k] = ((B, L), _torch_dtype(np.asarray(first[k]).dtype))
    buf = _batch_buffer(specs)

    def fill(dst: torch.Tensor, arrays: Sequence[np.ndarray], pad_value) -> torch.Tensor:
        view = dst.numpy()
        for i, a in enumerate(arrays):
            view[i, : len(a)] = a  # memory-mapped faces are read straight into the batch
            if len(a) < L:
                view[i, len(a):] = pad_value
        return dst

    inputs = {}
    for m in first["inputs"]:
        if m == "video" and transform is not None:
            inputs[m] = buf["inputs.video"].permute(0, 1, 4, 2, 3)
            _transform_faces(samples, inputs[m])
        else:
            inputs[m] = fill(buf["inputs." + m], [s["inputs"][m] for s in samples], 0)
    out = {"inputs": inputs}
    for k, v in fills.items():
        out[k] = fill(buf[k], [s[k] for s in samples], v)
    out.update({
        "video_target": torch.tensor([s["video_target"] for s in samples], dtype=torch.long),
        "video_idx": torch.tensor([s["video_idx"] for s in samples], dtype=torch.long),
        "video_id": [s["video_id"] for s in samples],
        "bounds": torch.tensor([[s["start"], s["end"]] for s in samples], dtype=torch.long),
        # no padding anywhere: known here on the CPU, so the model can be told without asking the device
        "full": bool(out["mask"].all()),
    })
    return out


def write_synthetic_arrays(out: Path, lengths: Mapping[str, Sequence[int]], dims: Mapping[str, int],
                           face_size: int = 0, seed: int = 0) -> Path:
    """Tiny per-video arrays + dataset_info.pkl in the trainer's layout (tests, benchmarks).

    Labels follow a weak signal in feature 0 so a model can learn something in two epochs."""
    rng = np.random.RandomState(seed)
    out = Path(out)
    info: Dict[str, Dict[str, Any]] = {}
    k = 0
    for split, lens in lengths.items():
        trials = []
        for n in lens:
            vid = f"Videos/{k:05d}/Visite_1/{split}-{k}.mp4"
            k += 1
            folder = out / "features" / "compacted_48" / vid
            folder.mkdir(parents=True, exist_ok=True)
            on = rng.rand() < 0.5
            lab = np.zeros(n, np.float32)
            if on:
                s0 = rng.randint(0, max(n // 2, 1))
                lab[s0:s0 + max(n // 3, 1)] = 1
            for m, d in dims.items():
                x = rng.randn(n, d).astype(np.float32)
                x[:, 0] += 2.0 * lab
                np.save(folder / f"{m}.npy", x)
            if face_size:
                faces = rng.randint(0, 256, size=(n, face_size, face_size, 3), dtype=np.uint8)
                np.save(folder / "video.npy", faces)
            np.save(folder / f"{LABEL}.npy", lab)
            trials.append(vid)
        info[split] = {"trial": trials, "length": [int(n) for n in lens], "data_folder": "compacted_48",
                       "partition": split}
    with open(out / "dataset_info.pkl", "wb") as fh:
        pickle.dump(info, fh)
    return out
