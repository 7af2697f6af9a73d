"""Splitting a list of videos into contiguous blocks, one per cluster job.

``--nblocks B --process_block b`` (or ``--nparts/--part``) choose block ``b`` of ``B``; the
first ``len % B`` blocks get one more item. With no flags, a SLURM array
(``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT``) chooses the block.
"""
from __future__ import annotations

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
    """(nblocks, block) from flags, else from a SLURM array, else (1, 0)."""
    env = os.environ if env is None else env
    if nblocks is not None or block is not None:
        nb = 1 if nblocks is None else int(nblocks)
        b = 0 if block is None else int(block)
        block_bounds(0, nb, b)  # validates
        return nb, b
    if "SLURM_ARRAY_TASK_ID" in env:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        count = env.get("SLURM_ARRAY_TASK_COUNT")
        if count is None:
            raise ValueError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --nblocks")
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        nb, b = int(count), task - first
        block_bounds(0, nb, b)
        return nb, b
    return 1, 0
