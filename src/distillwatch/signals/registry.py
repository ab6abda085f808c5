"""Every signal, registered by its stable id in one table."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from distillwatch.errors import SignalError
from distillwatch.signals.base import Signal

SignalFactory = Callable[[], Signal]
REGISTRY: dict[str, SignalFactory] = {}
S = TypeVar("S", bound=type[Signal])


def register(cls: S) -> S:
    """Class decorator: make a signal available by its ``id`` (ids are unique and stable)."""
    if cls.id in REGISTRY:
        raise SignalError(f"signal id {cls.id!r} registered twice")
    REGISTRY[cls.id] = cls
    return cls


def create_signals(ids: Iterable[str] | None = None) -> list[Signal]:
    """Fresh instances (each engine owns its own, population baselines included); all of them
    in the order of their ids, so that the order never depends on which module some other
    import happened to load first (a Spark worker and its driver must agree to the byte)."""
    _load_builtin()
    wanted = sorted(REGISTRY) if ids is None else list(ids)
    unknown = [i for i in wanted if i not in REGISTRY]
    if unknown:
        raise SignalError(
            f"unknown signal id(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}"
        )
    return [REGISTRY[i]() for i in wanted]


def _load_builtin() -> None:
    # Importing the family modules runs their @register decorators.
    from distillwatch.signals import (  # noqa: F401
        content,
        harvest,
        intent,
        lockstep,
        network,
        signup,
        structure,
        targeting,
        templates,
        timing,
        volume,
    )
