"""``bah personalize`` and ``bah personalize-report``: parsing and wiring only."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _methods(text: str):
    from .adapters import ADAPTERS

    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in ADAPTERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad}; choose from {ADAPTERS.list()}")
    return names


def _seeds(text: str):
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected comma-separated integers") from None


def add_personalize_arguments(parser: argparse.ArgumentParser) -> None:
    from .adapters import ADAPTERS
    from .protocol import SPLITS

    g = parser.add_argument_group("personalize")
    g.add_argument("--source-run", default=None, help="a `bah train` run folder (or its best-model/)")
    g.add_argument("--method", type=_methods, default=None, metavar="M[,M...]",
                   help=f"adaptation method(s), comma-separated: {', '.join(ADAPTERS.list())} "
                        "(source_only is always added: deltas are taken against it)")
    g.add_argument("--targets", default=None, help="all (default) | paper10 | list:ID,... | file:PATH | sample:N:SEED")
    g.add_argument("--target-split", default=None, choices=SPLITS.list(), help="how target videos are split (holdout)")
    g.add_argument("--eval-videos", type=int, default=None, help="holdout: evaluation videos per target (3)")
    g.add_argument("--split-seed", type=int, default=None, help="seed of the holdout choice (0)")
    g.add_argument("--seeds", type=_seeds, default=None, help="adaptation seeds, e.g. 0,1,2 (0)")
    g.add_argument("--dataset-path", default=None, help="features + dataset_info.pkl (default: the run's)")
    g.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1")
    g.add_argument("--ddof", type=int, default=None, choices=(0, 1), help="std over targets (1)")
    g.add_argument("--select-on-target-labels", action="store_true", default=None,
                   help="pick the adaptation snapshot on LABELLED target data (optimistic; marked in every output)")


def run_personalize(args: argparse.Namespace) -> int:
    from bah.core.config import config_from_args

    from . import settings  # noqa: F401  (registers the section)
    from .experiment import SourceRunError, run_experiment
    from .protocol import ProtocolError

    ov = {"personalize.source_run": args.source_run, "personalize.methods": args.method,
          "personalize.targets": args.targets, "personalize.target_split": args.target_split,
          "personalize.eval_videos": args.eval_videos, "personalize.split_seed": args.split_seed,
          "personalize.seeds": args.seeds, "personalize.dataset_path": args.dataset_path,
          "personalize.device": args.device, "personalize.ddof": args.ddof,
          "personalize.select_on_target_labels": args.select_on_target_labels}
    cfg = config_from_args(args, sections=["personalize"], overrides=ov)
    try:
        res = run_experiment(cfg["personalize"], cfg.out, progress=True)
    except (SourceRunError, ProtocolError) as exc:
        log.error("%s", exc)
        return 2
    from .summary import table24_markdown

    print(table24_markdown(res["summary"], cfg["personalize"].target_split, cfg["personalize"].ddof))
    return 1 if res["failures"] else 0


def add_personalize_report_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("personalize-report")
    g.add_argument("dirs", nargs="+", metavar="DIR", help="`bah personalize` output folders")
    g.add_argument("--ddof", type=int, default=1, choices=(0, 1), help="std over targets (1)")


def run_personalize_report(args: argparse.Namespace) -> int:
    from .summary import write_report

    dest = Path(args.out) if args.out else Path(args.dirs[0]) / "report"
    try:
        files = write_report([Path(d) for d in args.dirs], dest, args.ddof)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    print(files["markdown"].read_text(encoding="utf-8"))
    log.info("report written to %s", dest)
    return 0
