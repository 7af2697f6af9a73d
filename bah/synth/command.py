"""``bah synth``: write a synthetic dataset in the BAH release layout."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from bah.synth import settings  # noqa: F401  (registers the "synth" config section)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("synth")
    g.add_argument("--subjects", type=int, default=None, help="number of synthetic participants (default 12)")
    g.add_argument("--videos-per-subject", type=int, default=None, help="videos per participant (default 3)")
    g.add_argument("--fps", type=float, default=None, help="frame rate (default 25)")
    g.add_argument("--seconds", type=float, default=None, help="length of each video in seconds (default 8)")
    g.add_argument("--seed", type=int, default=None, help="seed; the same seed gives the same dataset (default 0)")
    g.add_argument("--width", type=int, default=None, help="frame width in pixels, even (default 640)")
    g.add_argument("--height", type=int, default=None, help="frame height in pixels, even (default 480)")
    g.add_argument("--workers", type=int, default=None, help="videos rendered in parallel (default 0: one per CPU core, at most 8)")
    g.add_argument("--planted-shift", action="store_true",
                   help="write per-video FEATURE arrays with a per-participant shift instead of videos "
                        "(personalisation tests; settings: --set shift.KEY=VALUE, docs/personalization.md)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "planted_shift", False):
        from bah.apps.personalization.shift import run_planted_shift

        return run_planted_shift(args)
    from bah.core.config import config_from_args
    from bah.synth.generator import SynthError, generate_from_config
    from bah.synth.speech import SpeechError

    keys = ("subjects", "videos_per_subject", "fps", "seconds", "seed", "width", "height", "workers")
    cfg = config_from_args(args, sections=["synth"], overrides={f"synth.{k}": getattr(args, k) for k in keys})
    # the dataset goes to --out; --data-root alone names it too (it is where the stages will read it)
    root = cfg.data_root if (cfg.data_root and not args.out) else cfg.out
    if not claim_folder(root):
        log.error("%s holds files that `bah synth` did not write; refusing to write a synthetic dataset into it "
                  "(use an empty or new folder)", root)
        return 2
    t0 = time.perf_counter()
    try:
        generate_from_config(root, cfg["synth"])
    except (SynthError, SpeechError) as exc:
        log.error("%s", exc)
        return 1
    log.info("synthetic dataset written to %s in %.1f s", root, time.perf_counter() - t0)
    return 0


def claim_folder(root: Path) -> bool:
    """True when ``root`` is new, empty, or was written by bah synth (its ``.synth/`` marker);
    an empty or new folder gets the marker before anything else is written."""
    from bah.synth.generator import SIDECAR_DIR

    root = Path(root)
    if (root / SIDECAR_DIR).is_dir():
        return True
    if root.is_dir() and any(root.iterdir()):
        return False
    (root / SIDECAR_DIR).mkdir(parents=True, exist_ok=True)
    return True
