"""Splitting a list of videos into contiguous blocks, one per cluster job.

Every per-video stage takes the same flag pair, ``--nblocks B --process_block b`` (older
spellings ``--nparts/--part`` are aliases): block ``b`` of ``B``, the first ``len % B``
blocks getting one more item. Inside a SLURM array the block comes from the array:
``--nblocks B`` alone takes ``b = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` (so
``--array=1-4`` works as well as ``--array=0-3``), and with no flags at all ``B`` is
``SLURM_ARRAY_TASK_COUNT``.
"""
from __future__ import annotations

import argparse
import os
from typing import Mapping, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")


def block_bounds(n: int, nblocks: int, block: int) -> Tuple[int, int]:
    """Half-open [start, end) of block ``block`` when ``n`` items are cut into ``nblocks``."""
    if nblocks < 1:
        raise ValueError(f"number of blocks must be >= 1, got {nblocks}")
    if not 0 <= block < nblocks:
        raise ValueError(f"block index must be in [0, {nblocks - 1}], got {block}")
    q, r = divmod(n, nblocks)
    start = block * q + min(block, r)
    return start, start + q + (1 if block < r else 0)


def take_block(items: Sequence[T], nblocks: int, block: int) -> Sequence[T]:
    start, end = block_bounds(len(items), nblocks, block)
    return items[start:end]


def resolve_block(
    nblocks: Optional[int], block: Optional[int], env: Optional[Mapping[str, str]] = None
) -> Tuple[int, int]:
    """(nblocks, block) from the flags, completed from a SLURM array, else (1, 0)."""
    env = os.environ if env is None else env
    task = env.get("SLURM_ARRAY_TASK_ID")
    if block is not None:
        nb = 1 if nblocks is None else int(nblocks)
        block_bounds(0, nb, int(block))  # validates
        return nb, int(block)
    if task is None:
        nb = 1 if nblocks is None else int(nblocks)
        block_bounds(0, nb, 0)
        return nb, 0
    b = int(task) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    if nblocks is None:
        count = env.get("SLURM_ARRAY_TASK_COUNT")
        if count is None:
            raise ValueError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --nblocks")
        nblocks = int(count)
    nb = int(nblocks)
    if not 0 <= b < nb:
        raise ValueError(f"SLURM array task {task} (array starting at {env.get('SLURM_ARRAY_TASK_MIN', '0')}) is "
                         f"block {b}, outside --nblocks {nb}: submit with --array=0-{nb - 1}")
    return nb, b


def add_block_arguments(parser: argparse.ArgumentParser) -> None:
    """The one flag pair every per-video stage takes."""
    g = parser.add_argument_group("blocks (one cluster job each)")
    g.add_argument("--nblocks", "--nparts", dest="nblocks", type=int, default=None,
                   help="cut the videos into this many contiguous blocks (default 1, or the SLURM array size)")
    g.add_argument("--process_block", "--process-block", "--part", dest="process_block", type=int, default=None,
                   help="which block this job processes (0-based; default SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN)")
