#!/usr/bin/env python
"""Compatible entry point of the original ``post_feature_extract.py`` (stage C): ``bah index``.

The original (missing from the public repository) gathered the per-part
``dataset_info_<ds>_<split>_<P>_<p>.pkl`` files into ``dataset_info.pkl``. Here:

    python post_feature_extract.py --out OUT                 # from the manifest and OUT's arrays
    python post_feature_extract.py --ds BAH_DB --from-parts <root>/BAH_DB/features --out <root>/BAH_DB

Every flag of ``bah index`` works here.
"""
import sys

from bah.cli import main as bah_main


def main(argv=None) -> int:
    return bah_main(["index", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
