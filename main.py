"""The original entry point: ``python main.py --mode TRAINING --dataset_name BAH_DB ...``.

Also works under ``torchrun --nproc_per_node=K main.py ...`` (DDP). Everything lives in
``bah.train.cli``; see docs/training.md.
"""
import sys

from bah.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
