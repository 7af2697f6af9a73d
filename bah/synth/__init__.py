"""Synthetic datasets in the exact layout of the BAH release (``bah synth``).

Real photographs (moving, talking), real synthesized speech and Whisper-like transcripts, with
ambivalence/hesitancy planted in frame intervals in all three modalities at once. See
docs/synth.md.
"""
from bah.synth.command import add_arguments, run
from bah.synth.generator import SynthError, generate_dataset, generate_from_config, load_truth, render_video
from bah.synth.lexicon import FILLERS, HEDGES, has_hedge
from bah.synth.plan import DatasetPlan, VideoPlan, make_plan
from bah.synth.settings import SynthConfig

__all__ = [
    "add_arguments", "run", "generate_dataset", "generate_from_config", "load_truth", "render_video", "SynthError",
    "SynthConfig", "make_plan", "DatasetPlan", "VideoPlan", "HEDGES", "FILLERS", "has_hedge",
]
