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

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The workspace's shared folder, a sibling of the repository (or $BAH_SHARED); only the large
# reference fixtures and the real split files are looked for there.
SHARED = Path(os.environ.get("BAH_SHARED") or Path(__file__).resolve().parents[2] / "shared")
LARGE_REFERENCE = Path(os.environ.get("BAH_REFERENCE") or SHARED / "reference")
REAL_SPLITS = Path(os.environ.get("BAH_REAL_SPLITS") or SHARED / "data" / "bah-splits-v2")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The small reference files of the original's outputs shipped in tests/fixtures/reference
    (metrics, schedulers, windowing, BERT alignment, state-dict key lists; see its README)."""
    return FIXTURES / "reference"


@pytest.fixture(scope="session")
def large_reference_dir() -> Path:
    """The full reference folder (model forward passes, VGGish front end, alignment: 35 MB, not
    shipped): $BAH_REFERENCE or ../shared/reference next to the repository."""
    if not (LARGE_REFERENCE / "fixtures" / "model_forward_inputs.npz").is_file():
        pytest.skip(f"large reference fixtures not found at {LARGE_REFERENCE} (set BAH_REFERENCE to the reference "
                    f"folder of the BAH re-implementation kit)")
    return LARGE_REFERENCE


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
