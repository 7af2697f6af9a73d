"""Video-level A/H at challenge strength: window labels, learners, protocols, calibration, seed
ensembles and ABAW submission files (docs/challenge.md).

Modules are imported where used (``bah submit`` never loads torch or scikit-learn).
"""
