"""Compatible entry point of the original face stage: ``python bah_db.py --ds BAH_DB --split train
--nblocks 8 --process_block 0``. It runs ``bah faces`` (dlib instead of RetinaFace); any other
``bah faces`` flag (``--size 256``, ``--compat``, ``--detector cnn``, ``--force``, ...) passes through.

Unlike the original, ``--split val`` and ``--split test`` work, and ``--split`` selects only that
split (the original's ``train`` processed train, val and test together: use ``--split all``).
Data root and output folder: ``--data-root`` / ``--out`` or env ``BAH_DATA_ROOT`` / ``BAH_OUT``.
"""
import argparse
import sys


def main(argv=None) -> int:
    from bah import cli
    from bah.core.config import config_from_args
    from bah.core.layout import manifest_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ds", default="BAH_DB", help="dataset name; only BAH_DB is supported")
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"])
    p.add_argument("--nblocks", type=int, default=None)
    p.add_argument("--process_block", type=int, default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None)
    args, rest = p.parse_known_args(argv)
    if args.ds != "BAH_DB":
        p.error(f"--ds {args.ds!r}: only BAH_DB is supported")
    common = [f"--{k}={v}" for k, v in (("data-root", args.data_root), ("out", args.out)) if v]
    config = config_from_args(argparse.Namespace(data_root=args.data_root, out=args.out, config=None, set=[]))
    if not manifest_path(config.out).exists():
        # a fresh output folder: build the manifest first, as the original needed no separate step
        rc = cli.main(["manifest", *common])
        if rc:
            return rc
    argv2 = ["faces", *common, "--split", args.split]
    if args.nblocks is not None:
        argv2 += ["--nblocks", str(args.nblocks)]
    if args.process_block is not None:
        argv2 += ["--process_block", str(args.process_block)]
    return cli.main(argv2 + rest)


if __name__ == "__main__":
    sys.exit(main())
