"""Compatible entry point of the original compaction step: ``python compact_face_images.py --ds BAH_DB
--split train --nparts 4 --part 0``. It runs ``bah pack-faces``: every ``<faces dir>/<video id>/frame-<k>.jpg``
folder of the split becomes ``<out>/features/compacted_48/<video id>/video.npy``.

Crops come from ``--faces-dir`` (default ``<out>/cropped_aligned``, else ``<data root>/cropped-aligned-faces``);
other ``bah pack-faces`` flags (``--size 256``, ``--force``) pass through. Data root and output folder:
``--data-root`` / ``--out`` or env ``BAH_DATA_ROOT`` / ``BAH_OUT``.
"""
import argparse
import sys


def main(argv=None) -> int:
    from bah import cli

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ds", default="BAH_DB", help="dataset name; only BAH_DB is supported")
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"])
    p.add_argument("--nparts", type=int, default=None)
    p.add_argument("--part", type=int, default=None)
    args, rest = p.parse_known_args(argv)
    if args.ds != "BAH_DB":
        p.error(f"--ds {args.ds!r}: only BAH_DB is supported")
    argv2 = ["pack-faces", "--split", args.split]
    if args.nparts is not None:
        argv2 += ["--nparts", str(args.nparts)]
    if args.part is not None:
        argv2 += ["--part", str(args.part)]
    return cli.main(argv2 + rest)


if __name__ == "__main__":
    sys.exit(main())
