"""Options from a saved run: the one reader of a run's ``config.yml`` for EVALUATION mode,
``bah evaluate`` and ``bah predict``.

A run folder is ours (its ``config.yml`` has a ``compat`` key) or written by the ORIGINAL
trainer (the full args dict plus ``num_classes``, ``task``, ``folds_dir``, ``outd``, ``t0``; no
``compat``): the original's runs are evaluated in compat mode unless the command line says
``--compat False`` / ``--no-compat``.

What comes from where:

* ``RUN_OPTIONS`` (the model and how its inputs are built) always come from the run; a flag
  typed on the command line that contradicts the run's value is refused.
* ``COMMAND_OPTIONS`` (where the data is, which split, batch size, workers, device, compat,
  the video aggregation reported, output and logging) come from the command line when typed
  there, else from the run (data paths, compat) or the built-in default.
* Everything else (optimiser, schedule, epochs: what training did) is taken from the run and
  has no effect on an evaluation; typing it is refused like a model flag.
* Flags of the original that only served its other datasets (``emotion``, ``metrics``,
  ``save_path``, ``target_ds_name``) and its machine paths (``load_path``, ``cudaid``) are not
  taken from the run: the weights come from ``model.pt``, ``load_path`` is only read when the
  face backbone is missing from it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from bah.core.files import read_yaml
from bah.train.options import Options, OptionsError, _dests, get_args_parser, validate

log = logging.getLogger("bah.train")

RUN_OPTIONS = ("model_name", "modality", "num_heads", "modal_dim", "tcn_kernel_size", "window_length",
               "hop_length", "face_resize", "face_crop", "visual_backbone_path", "dataset_name", "fold_to_run",
               "num_folds", "train_supervision_type", "calc_mean_std", "amp", "amp_dtype", "seed", "time_delay",
               "use_other_class")
COMMAND_OPTIONS = ("dataset_path", "split_dir", "stats_cache", "face_cache", "eval_set", "eval_batch_size", "num_workers", "device",
                   "cudaid", "compat", "case_best_model", "output_root", "verbose", "fd_exp", "mode", "config",
                   "load_path", "deterministic", "exp_id", "force")
# from the command line when typed, else from the run (the data may still be where it was)
FROM_RUN_UNLESS_GIVEN = ("dataset_path", "split_dir", "stats_cache", "face_cache", "compat")
NOT_FROM_RUN = ("emotion", "metrics", "save_path", "target_ds_name", "load_path", "cudaid", "device", "mode",
                "fd_exp", "config", "output_root", "exp_id", "force", "resume", "verbose", "num_workers",
                "eval_batch_size", "eval_set", "case_best_model", "train_p", "valid_p", "test_p")


@dataclass(frozen=True)
class SavedRun:
    folder: Path  # the folder holding model.pt and config.yml
    config: Dict[str, Any]  # config.yml as written
    original: bool  # written by the original trainer
    options: Options  # resolved options of the evaluation
    taken: Dict[str, Any]  # options taken from the run


def find_model_folder(fd: Path) -> Path:
    """``fd/best-model`` or ``fd`` itself: the folder with ``model.pt`` and ``config.yml``."""
    fd = Path(fd)
    cands = [fd / "best-model", fd] if (fd / "best-model").is_dir() else [fd]
    for c in cands:
        if (c / "model.pt").is_file() and (c / "config.yml").is_file():
            return c
    raise OptionsError(f"--fd_exp {fd}: no model.pt + config.yml found (looked in {', '.join(map(str, cands))})")


def is_original_config(cfg: Mapping[str, Any]) -> bool:
    """The original trainer writes its args dict without ``compat`` (every bah run records it)."""
    return "compat" not in cfg


def _typed(dest: str, value: Any, action, source: str) -> Any:
    if isinstance(value, list):
        return ",".join(str(x) for x in value)
    if value is None or action.type is None or isinstance(value, bool) and action.type is not str:
        return value
    try:
        return action.type(value)
    except (TypeError, ValueError) as exc:
        raise OptionsError(f"{source}: {dest}: {exc}") from None


def options_from_run(fd: Path, command: Optional[Options] = None, given: Optional[frozenset] = None,
                     **overrides: Any) -> SavedRun:
    """Resolve the options of an evaluation of the run in ``fd``.

    ``command``: the command line's options (``given``: the dests typed there, default
    ``command._given``); ``overrides``: values set by the caller (e.g. ``bah predict``), which
    win over both. Contradicting model/data flags are refused with a message naming the flag,
    the run's value and the file.
    """
    folder = find_model_folder(fd)
    cfg_file = folder / "config.yml"
    cfg = read_yaml(cfg_file, OptionsError, what="run config")
    original = is_original_config(cfg)
    parser = get_args_parser()
    actions = _dests(parser)
    given = frozenset(given if given is not None else getattr(command, "_given", ()))
    values: Dict[str, Any] = {d: a.default for d, a in actions.items()}
    taken: Dict[str, Any] = {}
    for k, v in cfg.items():
        if k in actions and k not in NOT_FROM_RUN and (k not in FROM_RUN_UNLESS_GIVEN or k not in given):
            values[k] = _typed(k, v, actions[k], str(cfg_file))
            taken[k] = values[k]
    if original and "compat" not in given:
        values["compat"] = taken["compat"] = True
    if command is not None:
        for k in given:
            if k not in actions:
                continue
            mine = getattr(command, k)
            if k in COMMAND_OPTIONS or k in FROM_RUN_UNLESS_GIVEN:
                values[k] = mine
                taken.pop(k, None)
            elif k in taken and _differs(mine, taken[k]):
                kind = "model/data option" if k in RUN_OPTIONS else "training option"
                raise OptionsError(
                    f"--{k} {mine}: contradicts the saved run ({k}: {taken[k]} in {cfg_file}); a {kind} comes from "
                    f"the run in EVALUATION mode. Only these may change: "
                    f"{', '.join('--' + c for c in COMMAND_OPTIONS if c not in ('mode', 'config', 'fd_exp'))}")
        for k in ("eval_set", "eval_batch_size", "num_workers", "device", "verbose", "case_best_model", "output_root",
                  "deterministic"):
            if k not in given:
                values[k] = getattr(command, k)
    values.update(overrides)
    values.update(mode="EVALUATION", fd_exp=str(fd), train_p=100.0, valid_p=100.0, test_p=100.0)
    ns = Options()
    for k, v in values.items():
        setattr(ns, k, v)
    ns._given = given
    ns.cmdline = getattr(command, "cmdline", "")
    try:
        validate(ns)
    except OptionsError as exc:
        raise OptionsError(f"{cfg_file}: {exc}") from None
    return SavedRun(folder, cfg, original, ns.freeze(), taken)


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.upper() != b.upper()
    try:
        return float(a) != float(b)
    except (TypeError, ValueError):
        return a != b


def log_taken(run: SavedRun) -> None:
    """One line per option taken from the run (what this evaluation did not choose)."""
    kind = "original trainer" if run.original else "bah"
    log.info("%s/config.yml (written by the %s): options taken from the run:", run.folder, kind)
    for k in sorted(run.taken):
        log.info("  from the run: %s = %s", k, run.taken[k])


def weights_need_backbone(model_keys: List[str], saved_keys: List[str], prefix: str) -> bool:
    """True when the model runs a face backbone whose weights ``model.pt`` does not hold."""
    return any(k.startswith(prefix) for k in model_keys) and not any(k.startswith(prefix) for k in saved_keys)


def backbone_source(run: SavedRun) -> Tuple[Optional[str], str]:
    """(load_path, where it came from) for a backbone missing from model.pt."""
    o = run.options
    if o.load_path:
        return o.load_path, "--load_path"
    lp = run.config.get("load_path")
    return (str(lp) if lp else None), f"load_path in {run.folder / 'config.yml'}"
