"""The original trainer's training loader, re-implemented for side-by-side benchmarks.

The original code is not part of this repository. This module does, per window, the work
``../shared/docs/original-training.md`` §3.3-3.7 describes the original's ``Dataset`` doing,
in the same order and with the same libraries, so that ``bench/loader.py`` can time it on the
same data, machine and settings as ours in one run:

* every modality read by fancy-indexing a copy-on-write memory map (``mmap_mode="c"``) with
  the window's row indices (a short video is padded by repeating its last row, row by row);
* faces: the (L,S,S,3) window cast to float32, then per frame: back to uint8, a PIL RGB image,
  bilinear resize of the shorter side to 48, one 40x40 random crop and one flip coin (python
  ``random``) for the window, stacked, permuted to (L,3,40,40), ``/255``, then
  ``Normalize(0.5, 0.5)`` frame by frame and ``torch.stack``;
* vggish / bert: float32, ``ToTensor`` (1,L,D) and ``Normalize`` with per-dimension mean/std;
* labels as float32 (L,1); ``global_sup`` the window max; the whole label file opened too;
* torch's default collate, loader without persistent workers.

It is a benchmark baseline, not a training path: nothing in ``bah`` imports it.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

LABEL = "EXPR_continuous_label"


def windows(n: int, window: int, hop: int) -> List[np.ndarray]:
    """§3.3: starts 0, hop, ... while start + window <= n, plus a tail window."""
    x = np.arange(n)
    if n <= window:
        return [x]
    out = [x[i * hop:i * hop + window] for i in range((n - window) // hop + 1)]
    if out[-1][-1] < n - 1:
        out.append(x[-window:])
    return out


class OriginalWindows(Dataset):
    def __init__(self, folders: Sequence[Path], lengths: Sequence[int], stats: Mapping[str, Tuple[np.ndarray, np.ndarray]],
                 window: int = 696, hop: int = 48, resize: int = 48, crop: int = 40,
                 modalities: Sequence[str] = ("video", "vggish", "bert", LABEL)):
        self.items = [(Path(f), n, idx) for f, n in zip(folders, lengths) for idx in windows(n, window, hop)]
        self.window, self.resize, self.crop, self.modalities = window, resize, crop, list(modalities)
        self.feature_tf = {m: transforms.Compose([transforms.ToTensor(),
                                                  transforms.Normalize(mean=mu.reshape(1, -1), std=sd.reshape(1, -1))])
                           for m, (mu, sd) in stats.items()}
        self.scale = transforms.Resize(resize, transforms.InterpolationMode.BILINEAR)
        self.normalize = transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])

    def __len__(self) -> int:
        return len(self.items)

    def _faces(self, x: np.ndarray) -> torch.Tensor:
        imgs = [Image.fromarray(x[k].astype("uint8")).convert("RGB") for k in range(x.shape[0])]
        imgs = [self.scale(im) for im in imgs]
        left, top = random.randint(0, self.resize - self.crop), random.randint(0, self.resize - self.crop)
        if not (self.resize == self.crop):
            imgs = [im.crop((left, top, left + self.crop, top + self.crop)) for im in imgs]
        if random.random() < 0.5:
            imgs = [im.transpose(Image.FLIP_LEFT_RIGHT) for im in imgs]
        t = torch.from_numpy(np.stack(imgs, axis=0)).permute(0, 3, 1, 2).contiguous().float().div(255)
        return torch.stack([self.normalize(t[k]) for k in range(t.shape[0])], dim=0)

    def _load(self, folder: Path, n: int, index: np.ndarray, m: str) -> np.ndarray:
        data = np.load(folder / f"{m}.npy", mmap_mode="c")
        if n < self.window:  # allocated at the window length, the last row repeated
            ex = np.zeros((self.window,) + data.shape[1:], np.int8 if m == "video" else np.float32)
            ex[index] = data[index]
            for i in range(index.size, self.window):
                ex[i] = ex[index[-1]]
            return ex
        return data[index]

    def __getitem__(self, i: int) -> Tuple[Dict[str, object], int, np.ndarray]:
        folder, n, index = self.items[i]
        ex: Dict[str, object] = {}
        for m in self.modalities:
            x = self._load(folder, n, index, m)
            if m == LABEL:
                ex[m] = x.reshape(-1, 1).astype(np.float32)
            elif m == "video":
                ex[m] = self._faces(np.asarray(x, dtype=np.float32))
            else:
                ex[m] = self.feature_tf[m](np.asarray(x, dtype=np.float32))
        np.load(folder / f"{LABEL}.npy", mmap_mode="c")  # opened, unused (§3.4)
        z = ex[LABEL]
        ex["global_sup"] = z.max() * (z * 0.0 + 1.0)
        if len(index) < self.window:
            index = np.arange(self.window)
        return ex, n, index


def original_loader(ds: OriginalWindows, batch: int, workers: int) -> DataLoader:
    """§3.7: shuffled, pinned (a no-op without CUDA), workers re-forked every epoch."""
    return DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                      pin_memory=torch.cuda.is_available())
