"""Frame- and video-level metrics of A/H recognition, and the plots that draw them.

The plots sit here, not in ``bah.report``, because the trainer's run folder draws its
learning curves and confusion matrices while training (train is below report)."""
from bah.metrics.frame import *  # noqa: F401,F403
from bah.metrics.frame import __all__  # noqa: F401
