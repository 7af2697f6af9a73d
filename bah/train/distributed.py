"""DDP under torchrun, and the same code path single-process (world size 1).

``init_distributed()`` reads ``RANK/WORLD_SIZE/LOCAL_RANK`` (set by torchrun), or, for
processes started by ``srun`` directly (one task per GPU), ``SLURM_PROCID`` /
``SLURM_STEP_NUM_TASKS`` / ``SLURM_LOCALID`` with ``MASTER_ADDR`` (and ``MASTER_PORT``, default
derived from the job id) set by the job script; it returns a ``DistInfo`` and nothing is
written back into the options. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def job_cpus() -> int:
    """CPUs this job may use: a SLURM allocation or the process's CPU affinity, not the machine's count."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def pick_device(requested: Optional[str], local_rank: int = 0) -> torch.device:
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"--device {requested}: CUDA is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def process_group_env(env: Optional[Mapping[str, str]] = None) -> Tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's variables, else from an ``srun`` step.

    ``SLURM_STEP_NUM_TASKS`` exists only inside an srun step: a batch script that runs
    python without srun (``SLURM_NTASKS`` set, one process) stays single-process.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        return (int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0"))) if world > 1 else (0, 1, 0)
    world = int(env.get("SLURM_STEP_NUM_TASKS", "1"))
    if world <= 1:
        return 0, 1, 0
    if not env.get("MASTER_ADDR"):
        raise RuntimeError(f"srun started {world} tasks but MASTER_ADDR is not set: export MASTER_ADDR=<first node> "
                           f"in the job script (see scripts/slurm/train.sbatch) or start with torchrun")
    return int(env["SLURM_PROCID"]), world, int(env.get("SLURM_LOCALID", "0"))


def init_distributed(device: Optional[str] = None) -> DistInfo:
    rank, world, local = process_group_env()
    if world <= 1:
        return DistInfo(device=pick_device(device))
    if "WORLD_SIZE" not in os.environ:  # srun: the env:// rendezvous reads these
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local))
        os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
    dev = pick_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def all_gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    if not info.distributed:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
