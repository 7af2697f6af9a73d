"""``python main.py`` / ``bah train`` / ``bah evaluate``: parse the options and call the
trainer (``bah.train.trainer``); errors a user can fix become one line and exit code 2."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from bah.core import hugepages
from bah.core.config import ConfigError
from bah.train import preemption
from bah.train.options import Options, OptionsError, get_args_parser, parse_options
from bah.train.checkpoint import CheckpointError
from bah.train.dataset import DataError
from bah.train.run_folder import RunExistsError
from bah.train.trainer import evaluate_run, train


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python main.py ...`` (the original's flags, plus --config and --compat)."""
    hugepages.enable()
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        o = parse_options(argv)
        if o.mode == "EVALUATION":
            evaluate_run(o)
        else:
            with preemption.StopRequest():
                train(o, argv)
    except preemption.Preempted as exc:
        return _preempted("main.py", exc)
    except (OptionsError, ConfigError, RunExistsError, DataError, CheckpointError) as exc:
        print(f"main.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _preempted(prog: str, exc: Exception) -> int:
    preemption.mark_preempted(str(exc))
    print(f"{prog}: {exc}; run the same command again to continue (exit {preemption.REQUEUE_EXIT_CODE})",
          file=sys.stderr)
    return preemption.REQUEUE_EXIT_CODE


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """``bah train``: the trainer's flags on bah's subparser (bah adds --config/-v itself)."""
    _merge(parser, get_args_parser(add_help=False, include_common=False))


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_train_arguments(parser)


def _merge(dst: argparse.ArgumentParser, src: argparse.ArgumentParser) -> None:
    """Copy the trainer's flags onto ``dst`` with no defaults, so that the parsed namespace holds
    exactly the flags typed on the command line (they beat ``--config``); the help still shows
    each default."""
    existing = {s for a in dst._actions for s in a.option_strings}
    for group in src._action_groups:
        if not group._group_actions:
            continue
        g = dst.add_argument_group(group.title)
        for a in group._group_actions:
            if any(s in existing for s in a.option_strings):
                continue
            if a.default is not argparse.SUPPRESS:
                a.help = f"{a.help or ''} (default: {a.default})".strip()
                a.default = argparse.SUPPRESS
            g._add_action(a)


def _options_from_bah(args: argparse.Namespace, mode: str) -> Options:
    parser = get_args_parser(add_help=False, include_common=True)
    dests = {a.dest: a.default for a in reversed(parser._actions) if a.dest != "help"}  # first action's default wins
    # the trainer's flags have no default on bah's parser: present in args = typed (CLI > YAML > defaults)
    given = {d for d in dests if d not in ("config", "verbose", "mode") and hasattr(args, d)}
    ns = argparse.Namespace(**{d: getattr(args, d, default) for d, default in dests.items()})
    ns.mode = mode
    ns.verbose = True
    if getattr(args, "out", None) and "dataset_path" not in given:
        ns.dataset_path = str(args.out)  # the pipeline's --out holds dataset_info.pkl and features/
        given.add("dataset_path")
    ns._given = frozenset(given)
    if getattr(args, "out", None) and ns.output_root is None and not os.environ.get("BAH_RUNS"):
        # `bah train` writes only under --out (main.py keeps the original's ./exps); YAML may still set it
        ns.output_root = str(Path(args.out) / "runs")
    return parse_options([], parser, namespace=ns)


def run_train(args: argparse.Namespace) -> int:
    try:
        o = _options_from_bah(args, "TRAINING")
        with preemption.StopRequest():
            train(o, sys.argv[2:], prog="bah train")
    except preemption.Preempted as exc:
        return _preempted("bah train", exc)
    except (OptionsError, RunExistsError, DataError, CheckpointError) as exc:
        print(f"bah train: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        o = _options_from_bah(args, "EVALUATION")
        evaluate_run(o)
    except (OptionsError, RunExistsError, DataError, CheckpointError) as exc:
        print(f"bah evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0
