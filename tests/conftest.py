"""Test-wide settings: one thread everywhere (shared 2-core machines), offline model hub."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Tests run inside SLURM jobs too: SLURM_JOB_ID would turn on --resume auto and SLURM_ARRAY_TASK_ID
# would pick blocks; tests that want them set them themselves.
for _k in [k for k in os.environ if k.startswith("SLURM_")]:
    del os.environ[_k]

from pathlib import Path

import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
try:
    import cv2

    cv2.setNumThreads(1)
except ImportError:  # pragma: no cover
    pass

def _shared() -> Path:
    for cand in (os.environ.get("BAH_SHARED"), Path(__file__).resolve().parents[2] / "shared", "/work/shared"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return Path(__file__).resolve().parents[2] / "shared"


SHARED = _shared()
REFERENCE = Path(os.environ.get("BAH_REFERENCE", SHARED / "reference"))
REAL_SPLITS = Path(os.environ.get("BAH_REAL_SPLITS", SHARED / "data" / "bah-splits-v2"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference fixtures not found at {REFERENCE} (set BAH_REFERENCE)")
    return REFERENCE


@pytest.fixture(scope="session")
def real_splits_dir() -> Path:
    if not REAL_SPLITS.is_dir():
        pytest.skip(f"real BAH split files not found at {REAL_SPLITS} (set BAH_REAL_SPLITS)")
    return REAL_SPLITS


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic BAH-format dataset, generated once per test session."""
    from bah.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "BAH"
    generate_dataset(root, subjects=6, videos_per_subject=2, fps=25, seconds=4.0, seed=0)
    return root
