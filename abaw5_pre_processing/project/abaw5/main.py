"""Compatible entry point of the original feature extraction:

    python abaw5_pre_processing/project/abaw5/main.py --ds BAH_DB --split train --nparts 20 --part 0

It runs ``bah features`` for one split and one part. As in the original, the default
extractors are VGGish (with the original's row shift, ``--compat``) and BERT; the VGGish
weights come from ``--vggish-weights`` or the config file. Any other ``bah features`` flag
(``--out``, ``--data-root``, ``--config``, ``--extractors``, ...) is passed through.
"""
import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from bah.cli import main as bah_main

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ds", default="BAH_DB", choices=["BAH_DB"], help="dataset name (only BAH_DB)")
    parser.add_argument("--split", required=True, choices=["train", "val", "test"])
    parser.add_argument("--nparts", type=int, default=1)
    parser.add_argument("--part", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    if not 0 <= args.part < args.nparts:
        parser.error(f"--part must be in [0, {args.nparts - 1}]")
    if "--extractors" not in rest:
        rest += ["--extractors", "vggish,bert", "--compat"]
    return bah_main(["features", "--split", args.split, "--nparts", str(args.nparts), "--part", str(args.part), *rest])


if __name__ == "__main__":
    sys.exit(main())
