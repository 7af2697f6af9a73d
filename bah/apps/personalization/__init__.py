"""Personalisation by domain adaptation (Table 24): adapters, protocol, experiment, report.

See docs/personalization.md. ``ADAPTERS`` holds the methods; ``run_experiment`` runs one
``personalize`` configuration; ``generate_planted_shift`` writes the synthetic planted-shift
dataset used by the tests and the benchmark.
"""
from .adapters import ADAPTERS, AdaptationData, Adapter, AdapterParams, create_adapter
from .protocol import PAPER10, SPLITS, ProtocolError, TargetPlan, plan_targets, select_targets
from .shift import ShiftConfig, generate_planted_shift
from . import settings  # noqa: F401  (registers the "personalize" config section)
from .experiment import SourceRunError, load_source_run, run_experiment

__all__ = ["ADAPTERS", "AdaptationData", "Adapter", "AdapterParams", "create_adapter", "PAPER10", "SPLITS",
           "ProtocolError", "TargetPlan", "plan_targets", "select_targets", "ShiftConfig",
           "generate_planted_shift", "SourceRunError", "load_source_run", "run_experiment"]
