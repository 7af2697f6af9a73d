"""Pre-emption: stop cleanly on SIGTERM/SIGUSR1, and continue when the same command runs again.

A cluster scheduler announces the end of a job with a signal (SLURM: SIGTERM at the time
limit or on pre-emption, or the signal chosen with ``--signal=USR1@<seconds>``). The handler
only sets a flag; the trainer stops at the next safe point:

- between two training steps: the unfinished epoch is dropped, and the epoch is redone on
  resume from ``checkpoints/last.pth`` of the previous epoch, with the same seed, so the
  result equals an uninterrupted run (under DDP the ranks agree on the flag with one
  all-reduce per step, so all of them stop at the same step);
- at the end of an epoch (a signal during validation), once ``last.pth`` is saved.

Then the command exits with ``REQUEUE_EXIT_CODE`` (75, ``EX_TEMPFAIL``: try again) and, when
``BAH_PREEMPTED_FILE`` is set, writes that file: torchrun reports any failed worker as exit
status 1, so the sbatch templates under ``scripts/slurm/`` look for the file to decide on
``scontrol requeue``.

``--resume auto`` (the default when ``SLURM_JOB_ID`` is set) resumes when the run folder has a
``last.pth`` and starts otherwise, so a requeued or re-submitted job continues where it
stopped. On resume only ``RESUMABLE_OPTIONS`` may differ from the saved ``config.yml``; any
other difference stops the command with the diff before anything is written.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Union

import yaml

from bah.core.files import plain, read_yaml, write_json
from bah.train.run_folder import RunExistsError

log = logging.getLogger(__name__)

REQUEUE_EXIT_CODE = 75  # sysexits EX_TEMPFAIL: stopped on request, `last.pth` saved, run again to continue
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")
# Options that change how a run is executed, not what it computes (plus bookkeeping flags).
RESUMABLE_OPTIONS = frozenset({"num_epochs", "num_workers", "eval_batch_size", "device", "cudaid", "verbose",
                               "face_cache", "resume", "force", "config", "output_root", "mode", "cmdline"})
AUTO = "auto"
PREEMPTED_FILE_ENV = "BAH_PREEMPTED_FILE"


class Preempted(Exception):
    """Raised at a safe point after a stop signal; the command exits with ``REQUEUE_EXIT_CODE``."""


class ResumeMismatchError(RunExistsError):
    """The options of a resumed run differ from the saved ones outside ``RESUMABLE_OPTIONS``."""


def mark_preempted(reason: str) -> None:
    """Leave the file named by BAH_PREEMPTED_FILE for the job script (see the module docstring)."""
    path = os.environ.get(PREEMPTED_FILE_ENV)
    if path:
        write_json(path, {"reason": reason, "host": socket.gethostname(), "pid": os.getpid(),
                          "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "exit": REQUEUE_EXIT_CODE})


# ---------------------------------------------------------------------------------- --resume
def parse_resume(value: Any) -> Union[bool, str]:
    """``--resume``: true/false (the original's str2bool) or ``auto``."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v == AUTO:
        return AUTO
    if v in ("true", "1", "yes", "y", "t"):
        return True
    if v in ("false", "0", "no", "n", "f"):
        return False
    raise ValueError(f"expected true, false or auto, got {value!r}")


def default_resume() -> Union[bool, str]:
    """``auto`` inside a SLURM job (requeue must continue the run), otherwise False."""
    return AUTO if os.environ.get("SLURM_JOB_ID") else False


def default_exp_id() -> Optional[str]:
    """A run id that a requeued SLURM job finds again (the job id survives a requeue)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if job and task:
        return f"slurm-{job}_{task}"
    job = os.environ.get("SLURM_JOB_ID")
    return f"slurm-{job}" if job else None


def wants_resume(resume: Union[bool, str], last: Path) -> bool:
    """True when training continues from ``last``: asked for (True), or ``auto`` and it exists."""
    return bool(resume is True or (resume == AUTO and Path(last).exists()))


def options_diff(saved: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """``--name: saved -> new`` for every option outside RESUMABLE_OPTIONS that differs.

    Options absent from either side (a run saved by another bah version) are not compared.
    """
    new = yaml.safe_load(yaml.safe_dump(plain(dict(new))))  # the types config.yml holds
    out = []
    for k in sorted(set(saved) & set(new)):
        if k not in RESUMABLE_OPTIONS and saved[k] != new[k]:
            out.append(f"  --{k}: {saved[k]!r} -> {new[k]!r}")
    return out


def check_resume(config_path: Path, options: Mapping[str, Any]) -> None:
    """Refuse to resume with changed options, naming each change; writes nothing."""
    config_path = Path(config_path)
    if not config_path.is_file():
        return  # killed before config.yml was written: nothing to compare with
    saved = read_yaml(config_path, ResumeMismatchError, "saved options")
    diff = options_diff(saved, options)
    if diff:
        allowed = ", ".join(f"--{k}" for k in sorted(RESUMABLE_OPTIONS - {"mode", "config", "resume", "force", "cmdline"}))
        raise ResumeMismatchError(
            f"cannot resume {config_path.parent}: options differ from the saved run:\n" + "\n".join(diff)
            + f"\nOnly {allowed} may change on resume. Use the saved values, another --exp_id, "
              f"or --force True to start over.")


# ---------------------------------------------------------------------------------- signals
class StopRequest:
    """Installs flag-setting handlers for STOP_SIGNALS; restores the previous ones on exit.

    A second signal while a stop is already pending restores the default action and
    re-delivers it, so an impatient ``kill`` (or ``scancel`` twice) still ends the process.
    """

    def __init__(self) -> None:
        self.signal: Optional[str] = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
            return
        self.signal = name
        log.warning("%s received: stopping at the next safe point (last.pth, exit %d)", name, REQUEUE_EXIT_CODE)

    def __enter__(self) -> "StopRequest":
        global _current
        try:
            for name in STOP_SIGNALS:
                signum = getattr(signal, name)
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: signals cannot be caught here
            self._previous.clear()
        self._outer, _current = _current, self
        return self

    def __exit__(self, *exc: Any) -> None:
        global _current
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        _current = self._outer


_NEVER = StopRequest()
_current: StopRequest = _NEVER


def current() -> StopRequest:
    """The active request (an inert one when no entry point installed handlers)."""
    return _current


def guard(loader: Iterable, info: Any) -> "_Guarded":
    """Wrap a training loader: stop before the next step once a signal arrived (on any rank)."""
    return _Guarded(loader, current(), info)


def _any_rank(flag: bool, info: Any) -> bool:
    if not getattr(info, "distributed", False):
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class _Guarded:
    def __init__(self, loader: Iterable, stop: StopRequest, info: Any):
        self._loader, self._stop, self._info = loader, stop, info

    def __len__(self) -> int:
        return len(self._loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __iter__(self) -> Iterator:
        for batch in self._loader:
            if _any_rank(self._stop.requested, self._info):
                raise Preempted(f"{self._stop.signal or 'a stop signal on another rank'}: stopped between two "
                                f"steps; the unfinished epoch is "
                                f"redone on resume")
            yield batch


def stop_point(info: Any, epoch: int) -> None:
    """End of an epoch, after ``last.pth`` is saved: stop here when any rank was signalled."""
    stop = current()
    if _any_rank(stop.requested, info):
        raise Preempted(f"{stop.signal or 'a stop signal on another rank'}: stopped after epoch {epoch} "
                        f"(last.pth saved)")
