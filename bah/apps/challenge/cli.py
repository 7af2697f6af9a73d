"""``bah fit-video``, ``bah submit`` and ``bah validate-submission``: parsing and wiring only."""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Optional

log = logging.getLogger("bah.apps.challenge")

# recipes shipped with the repository: configs/<name>.yaml
RECIPES_DIR = Path(__file__).resolve().parents[3] / "configs"


def resolve_recipe(recipe: str) -> Path:
    """A recipe file, or the name of one under configs/ (``video-text-tfidf``)."""
    path = Path(recipe)
    if path.is_file():
        return path
    named = RECIPES_DIR / f"{recipe.removesuffix('.yaml')}.yaml"
    if named.is_file():
        return named
    # the paper configs (bah run-config) share the folder; a recipe is a file with a challenge section
    known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")
                   if re.search(r"^challenge:", p.read_text(encoding="utf-8"), re.M)) if RECIPES_DIR.is_dir() else []
    raise FileNotFoundError(f"recipe {recipe!r}: no such file, nor {named}; recipes: {', '.join(known) or 'none'}")


def _seeds(text: str):
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str):
    return [s.strip() for s in text.split(",") if s.strip()]


# --------------------------------------------------------------------------- fit-video
def add_fit_video_arguments(parser: argparse.ArgumentParser) -> None:
    from .calibration import CALIBRATIONS
    from .features import TEXT_SOURCES
    from .learners import VIDEO_LEARNERS
    from .protocol import PROTOCOLS, SELECT_ON

    parser.epilog = "--out is the run folder (video-run.json, predictions-*.csv, threshold-curve.png)."
    g = parser.add_argument_group("fit-video")
    g.add_argument("--recipe", default=None, metavar="NAME|FILE",
                   help="a recipe: configs/<NAME>.yaml or a file (the same as --config FILE)")
    g.add_argument("--work", default=None, metavar="DIR",
                   help="the video-feature stage's --out (holds video_features/ and transcripts/)")
    g.add_argument("--features", type=_names, default=None, metavar="A,B", help="video feature extractor names")
    g.add_argument("--text-source", choices=TEXT_SOURCES, default=None, help="where transcripts come from")
    g.add_argument("--learner", choices=VIDEO_LEARNERS.list(), default=None)
    g.add_argument("--protocol", choices=PROTOCOLS.list(), default=None)
    g.add_argument("--folds", type=int, default=None, help="challenge protocol: participant-grouped folds (5)")
    g.add_argument("--seeds", type=_seeds, default=None, metavar="0,1,2", help="seed ensemble (0,1,2)")
    g.add_argument("--calibration", choices=CALIBRATIONS.list(), default=None, help="threshold mode (plateau)")
    g.add_argument("--select-on", choices=SELECT_ON, default=None,
                   help="'test' selects on the test split: optimistic, and test numbers are then refused")


def run_fit_video(args: argparse.Namespace) -> int:
    from bah.core.config import ConfigError, config_from_args

    from . import settings  # noqa: F401  (registers the section)
    from .experiment import fit_video
    from .report import summary_markdown

    if args.recipe and args.config:
        raise ConfigError("give --recipe or --config, not both")
    try:
        config = str(resolve_recipe(args.recipe)) if args.recipe else args.config
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    ov = {"challenge.work": args.work, "challenge.features": args.features, "challenge.text_source": args.text_source,
          "challenge.learner": args.learner, "challenge.protocol": args.protocol, "challenge.folds": args.folds,
          "challenge.seeds": args.seeds, "challenge.calibration": args.calibration,
          "challenge.select_on": args.select_on}
    if args.learner:  # the recipe's keywords and candidates belong to its own learner
        ov["challenge.learner_kwargs"] = {}
        ov["challenge.candidates"] = []
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "config": config}), sections=["challenge"],
                           overrides=ov)
    data_root = cfg.require_data_root()
    cfg.save(cfg.out / "config.yaml")
    try:
        run = fit_video(cfg["challenge"], data_root, cfg.out, source=cfg.source)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    print(summary_markdown(run), end="")
    return 1 if run["failures"] else 0


# --------------------------------------------------------------------------- submit
def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "--out is the submission folder (trial-K.txt, trials.json)."
    g = parser.add_argument_group("submit")
    g.add_argument("--run", required=True, metavar="RUN_DIR", help="a `bah fit-video` run folder")
    g.add_argument("--template", default=None, metavar="FILE",
                   help="the organisers' template (video order); default: the run's test split order")
    g.add_argument("--trial", type=int, required=True, metavar="K", help="trial number, 0..4")
    g.add_argument("--no-probs", action="store_true", help="write '<path>,<label>' lines")
    g.add_argument("--overwrite", action="store_true", help="replace an existing trial-K.txt")


def run_submit(args: argparse.Namespace) -> int:
    from .report import SelectionLeakError
    from .submission import SubmissionError, read_template, validate_submission, write_submission

    if not args.out:
        print("bah submit: give --out DIR (the submission folder)", file=sys.stderr)
        return 2
    try:
        template = read_template(args.template) if args.template else None
        dest = write_submission(args.run, args.out, args.trial, template, probs=not args.no_probs,
                                overwrite=args.overwrite)
    except (SubmissionError, SelectionLeakError, FileNotFoundError, ValueError) as exc:
        print(f"bah submit: {exc}", file=sys.stderr)
        return 2
    from .report import predictions_path, read_predictions, read_run

    run = read_run(args.run)
    order = template or [v for v, _ in read_predictions(predictions_path(args.run, run, "test"))]
    problems = validate_submission(dest, order, float(run["threshold"]))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"wrote {dest} ({len(order)} videos, threshold {float(run['threshold']):.4f})")
    return 1 if problems else 0


# --------------------------------------------------------------------------- validate-submission
def add_validate_submission_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("validate-submission")
    g.add_argument("file", metavar="FILE", help="a trial-K.txt")
    g.add_argument("--template", required=True, metavar="T", help="the organisers' template (or a split file)")
    g.add_argument("--run", default=None, metavar="RUN_DIR", help="check labels against this run's threshold")


def run_validate_submission(args: argparse.Namespace) -> int:
    from .report import read_run
    from .submission import SubmissionError, read_template, validate_submission

    threshold: Optional[float] = None
    try:
        template = read_template(args.template)
        if args.run:
            threshold = float(read_run(args.run)["threshold"])
        problems = validate_submission(args.file, template, threshold)
    except (SubmissionError, FileNotFoundError, ValueError) as exc:
        print(f"bah validate-submission: {exc}", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print(f"{args.file}: REFUSED ({len(problems)} problem(s))")
        return 1
    print(f"{args.file}: valid ({len(template)} videos)")
    return 0
