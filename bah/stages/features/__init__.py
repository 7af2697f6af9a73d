"""Per-frame features (audio, text, visual embeddings) and the ``bah features`` stage.

Every extractor is an entry of ``EXTRACTORS``; the stage builds the ones named in the
``features`` config section. Component modules are imported explicitly here so that
importing the package fills the registry.
"""
from bah.stages.features.base import EXTRACTORS, Extractor, VideoInput

from bah.stages.features import audio, text, vggish, visual  # noqa: E402,F401  (fill the registry)

__all__ = ["EXTRACTORS", "Extractor", "VideoInput"]
