"""The ``bah`` command: one subcommand per stage.

Each stage module exposes ``add_arguments(parser)`` and ``run(args) -> int``; it is imported
only when its subcommand runs, so ``bah --help`` is fast and one stage's heavy imports never
slow another. Every subcommand takes ``--data-root``, ``--out``, ``--config``, ``--set`` and
``--no-progress``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from bah.core import hugepages
from bah.core.config import ConfigError

# name -> (module, one-line help). The module owns its flags and its work.
COMMANDS = {
    "synth": ("bah.synth", "write a synthetic dataset in the BAH release layout"),
    "manifest": ("bah.stages.manifest", "build the per-video manifest of a dataset (PyAV facts)"),
    "faces": ("bah.stages.faces.stage", "detect, align and pack faces into one array per video"),
    "pack-faces": ("bah.stages.faces.packing", "pack an existing folder of face crops into arrays"),
    "features": ("bah.stages.features.stage", "extract audio / text / visual features per frame"),
    "transcribe": ("bah.stages.speech.transcribe", "offline speech recognition with word times (faster-whisper)"),
    "video-features": ("bah.stages.video_features.stage", "per-window and per-video features (timing, prosody, text, face)"),
    "labels": ("bah.stages.labels", "write per-frame A/H labels from the annotation YAML"),
    "index": ("bah.stages.index", "gather the shards into dataset_info.pkl and a JSON index"),
    "status": ("bah.apps.overview", "per stage and block: videos done / failed / missing, blocks that never finished"),
    "train": ("bah.train.cli", "train a model (the flags of the original main.py)"),
    "evaluate": ("bah.train.cli", "evaluate a saved run on a split"),
    "predict": ("bah.apps.predict", "per-frame A/H timeline for a new video"),
    "report": ("bah.report.document", "write the Markdown + PNG report of a run"),
    "run-config": ("bah.apps.pipeline", "run the whole pipeline for one paper configuration"),
    "demo": ("bah.apps.pipeline", "synthetic dataset -> features -> train -> evaluate -> report"),
    "zeroshot": ("bah.apps.zeroshot.cli", "zero-shot A/H prediction with (multimodal) language models"),
    "personalize": ("bah.apps.personalization.cli", "per-participant domain adaptation of a trained run"),
    "personalize-report": ("bah.apps.personalization.cli", "Table-24-style report of personalisation runs"),
    "fit-video": ("bah.apps.challenge.cli", "video-level A/H learners: protocols, calibration, seed ensembles"),
    "submit": ("bah.apps.challenge.cli", "write an ABAW challenge submission file (trial-K.txt) from a video run"),
    "validate-submission": ("bah.apps.challenge.cli", "check a challenge submission file against the template"),
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common")
    g.add_argument("--data-root", default=None, help="the dataset release folder (Videos/, split/, ...); env BAH_DATA_ROOT")
    g.add_argument("--out", default=None, help="folder for every output of the pipeline; env BAH_OUT (default ./bah-out)")
    g.add_argument("--config", default=None, metavar="FILE.yaml", help="YAML configuration (command line wins over it)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting, e.g. faces.size=128")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bah", description="Ambivalence/hesitancy recognition in videos (BAH).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    hugepages.enable()
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        top.print_help()
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nbah: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("bah"):
            print(f"bah {name}: not available in this version ({exc})", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"bah {name}", description=help_text)
    add_common_arguments(parser)
    adder = getattr(module, f"add_{name.replace('-', '_')}_arguments", None) or module.add_arguments
    runner = getattr(module, f"run_{name.replace('-', '_')}", None) or module.run
    adder(parser)
    try:  # every command takes it; some stages declare it themselves
        parser.add_argument("--no-progress", action="store_true", help="no progress bars (as TQDM_DISABLE=1)")
    except argparse.ArgumentError:
        pass
    args = parser.parse_args(rest)
    if args.no_progress:
        os.environ["TQDM_DISABLE"] = "1"  # bah.core.progress: every bar of this command, in every module
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(runner(args) or 0)
    except ConfigError as exc:
        print(f"bah {name}: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
