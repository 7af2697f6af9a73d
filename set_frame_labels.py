#!/usr/bin/env python
"""Compatible entry point of the original ``set_frame_labels.py`` (stage E): ``bah labels``.

The original overwrote ``EXPR_continuous_label.npy`` with the annotation's per-frame labels from
hard-coded host paths; this takes the dataset and output folders as flags (or BAH_DATA_ROOT /
BAH_OUT) and keeps a backup. ``--ds BAH_DB`` is accepted for old command lines. Every flag of
``bah labels`` works here, e.g. ``--annotation FILE``, ``--max-resample-frames``.
"""
import argparse
import sys

from bah.cli import main as bah_main


def main(argv=None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--ds", default="BAH_DB", choices=["BAH_DB"])
    _, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    return bah_main(["labels", *rest])


if __name__ == "__main__":
    sys.exit(main())
