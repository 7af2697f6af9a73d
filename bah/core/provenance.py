"""Where and with what a result was produced: code version, packages, host, scheduler job.

Recorded in every run's ``config.yml`` so a number in a paper table can be traced back to
the commit, the library versions and the SLURM job that made it.
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

PACKAGES = ("numpy", "torch", "torchvision", "scipy", "scikit-learn", "transformers", "av", "dlib", "opencv-python",
            "opencv-python-headless", "PyYAML")
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NAME", "SLURM_JOB_PARTITION",
              "SLURM_JOB_NODELIST", "SLURM_NTASKS", "SLURM_RESTART_COUNT", "SLURM_CLUSTER_NAME")


def git_state(folder: Optional[Path] = None) -> Dict[str, Any]:
    """Commit and dirtiness of the checkout holding the bah package (empty when not a git clone)."""
    folder = folder or Path(__file__).resolve().parents[2]
    if not (folder / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def package_versions() -> Dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("bah", *PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "bah" not in out:  # run from a clone without an install
        from bah import __version__

        out["bah"] = __version__
    return out


def provenance() -> Dict[str, Any]:
    doc: Dict[str, Any] = {"host": socket.gethostname(), "user": os.environ.get("USER") or os.environ.get("LOGNAME"),
                           "cwd": os.getcwd(), "python_executable": sys.executable, "packages": package_versions()}
    git = git_state()
    if git:
        doc["git"] = git
    slurm = {k[len("SLURM_"):].lower(): os.environ[k] for k in SLURM_VARS if k in os.environ}
    if slurm:
        doc["slurm"] = slurm
    return doc
