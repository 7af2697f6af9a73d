"""The training dataset keeps a bounded number of files open whatever the number of videos:
an epoch over 1,000 tiny videos (3,000 arrays) runs under an open-file limit of 256."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

resource = pytest.importorskip("resource")  # POSIX only

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    import torch
    from torch.utils.data import DataLoader
    from bah.train.dataset import WindowDataset, collate, split_records, write_synthetic_arrays

    root = write_synthetic_arrays(Path(sys.argv[1]), {"train": [12] * 1000, "val": [12], "test": [12]},
                                  {"vggish": 4, "bert": 3}, seed=0)
    ds = WindowDataset(split_records(root, "train"), ["vggish", "bert"], 8, 4, train=True)
    windows = 0
    for workers in (0, 2):
        for batch in DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate, num_workers=workers):
            windows += batch["target"].shape[0]
    fds = len(list(Path("/proc/self/fd").iterdir())) if Path("/proc/self/fd").is_dir() else -1
    print(windows, len(ds), len(ds._arrays), fds)
""")


def test_an_epoch_over_1000_videos_under_256_open_files(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    windows, items, cached, fds = map(int, r.stdout.split())
    assert windows == 2 * items and items >= 2000  # both epochs saw every window of every video
    assert cached == 32  # 256 // 8 memory maps kept, whatever the number of videos
    assert fds == -1 or fds < 100
