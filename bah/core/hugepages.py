"""Large CPU tensors on 2 MB pages (transparent huge pages).

Every training batch (four windows of 696 faces: 53 MB of float32) and every whole-video array
is a fresh allocation, and on 4 kB pages the kernel faults each page in at its first write:
filling a fresh 4-window face batch took 4.9 ms per window here, 1.4 ms on huge pages
(docs/performance.md). PyTorch puts its CPU allocations of 2 MB and more on huge pages when
``THP_MEM_ALLOC_ENABLE=1``, a variable it reads once, at its first such allocation, so the
entry points call ``enable()`` before any. ``THP_MEM_ALLOC_ENABLE=0`` in the environment keeps
4 kB pages. Loader workers are forked after it is read and inherit it.
"""
from __future__ import annotations

import os


def enable() -> None:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
