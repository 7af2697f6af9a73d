"""bench/original_loader.py, the baseline of bench/loader.py, does the original's work per
window: the same face pixels as our transform for the same crop and flip, and under --compat
the same z-scored features and labels, to the bit."""
import random
import sys
from pathlib import Path

import numpy as np
import torch

from bah.train.dataset import write_synthetic_arrays
from bah.train.options import parse_options
from bah.train.trainer import build_datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from original_loader import LABEL, OriginalWindows, windows  # noqa: E402


def test_original_windows_follow_the_documented_rule():
    assert [w[[0, -1]].tolist() for w in windows(1000, 696, 48)] == [
        [0, 695], [48, 743], [96, 791], [144, 839], [192, 887], [240, 935], [288, 983], [304, 999]]
    assert [len(w) for w in windows(500, 696, 48)] == [500]


def test_original_baseline_gives_our_compat_items(tmp_path):
    root = write_synthetic_arrays(tmp_path / "d", {"train": [90, 50], "val": [40], "test": [40]},
                                  {"vggish": 16, "bert": 24}, face_size=48)
    o = parse_options(["--dataset_path", str(root), "--modality", "video+vggish+bert+EXPR_continuous_label",
                       "--window_length", "64", "--hop_length", "16", "--compat", "--num_workers", "0",
                       "--verbose", "False", "--stats_cache", str(tmp_path)])
    ds = build_datasets(o, splits=("train",))["train"]
    stats = {m: (ds.stats[m].mean, ds.stats[m].std) for m in ("vggish", "bert")}
    orig = OriginalWindows([v.folder for v in ds.videos], [v.length for v in ds.videos], stats, window=64, hop=16)
    assert sorted((int(i[2][0]), len(i[2])) for i in orig.items) == sorted((s, e - s) for _, s, e in ds.items)
    for k, (folder, n, index) in enumerate(orig.items):
        mine = ds[[i for i, (vi, s, _) in enumerate(ds.items)
                   if ds.videos[vi].folder == folder and s == index[0]][0]]
        random.seed(k)
        left, top, flip = random.randint(0, 8), random.randint(0, 8), random.random() < 0.5
        random.seed(k)
        ex, length, idx = orig[k]
        assert length == n and len(idx) == 64
        for m in ("vggish", "bert"):
            assert np.array_equal(ex[m][0].numpy(), mine["inputs"][m])  # the original's Normalize, to the bit
        assert np.array_equal(ex[LABEL][:, 0], mine["target"].astype(np.float32))
        faces = torch.from_numpy(np.array(mine["inputs"]["video"]))[:, top:top + 40, left:left + 40]
        want = (faces.flip(2) if flip else faces).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert torch.equal(ex["video"], want)
