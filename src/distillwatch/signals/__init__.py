"""Signals: per-account measurements, each registered by a stable id (``registry.REGISTRY``)."""

from distillwatch.signals.base import EvalContext, Signal
from distillwatch.signals.registry import REGISTRY, create_signals, register

__all__ = ["REGISTRY", "EvalContext", "Signal", "create_signals", "register"]
