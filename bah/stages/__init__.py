"""Preprocessing stages (manifest, faces, features, labels, index): each a ``run(args)``
that reads the release or an earlier stage's outputs and writes its own, block by block."""
