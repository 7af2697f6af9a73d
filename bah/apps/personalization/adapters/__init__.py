"""Adaptation methods, one registry (``ADAPTERS``); import order registers them."""
from .base import (ADAPTERS, AdaptationData, AdaptationError, Adapter, AdapterParams, create_adapter, make_params,
                   param_group_of, param_groups)
from . import basic, mmd, subject, shot, nrc  # noqa: F401  (registration)

__all__ = ["ADAPTERS", "AdaptationData", "AdaptationError", "Adapter", "AdapterParams", "create_adapter",
           "make_params", "param_group_of", "param_groups"]
