"""One way to build the engine every driver runs: signals, policy, scorer and the linker.

``scan``, ``bench detect``, ``bench calibrate``, the ablation and the gateway all need the
same wiring (a fresh set of signals per engine, campaign attribution hooked in, the linker
told to re-score an account when its campaign evidence changes); this is that wiring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from distillwatch.attribute.linker import CampaignLinker
from distillwatch.detect import Engine, LogOddsScorer
from distillwatch.detect.engine import Decider
from distillwatch.records import Account
from distillwatch.signals import create_signals
from distillwatch.signals.base import Signal


def build_engine(
    policy: Decider,
    accounts: Mapping[str, Account] | None = None,
    *,
    campaigns: bool = True,
    signals: Sequence[Signal] | None = None,
    scorer: LogOddsScorer | None = None,
    cls: type[Engine] = Engine,
    **kwargs: Any,
) -> Engine:
    """A fresh engine; with ``campaigns``, a ``CampaignLinker`` wired both ways."""
    accounts = accounts or {}
    sigs = list(signals) if signals is not None else create_signals()
    if not campaigns:
        return cls(sigs, policy, accounts, scorer=scorer, **kwargs)
    linker = CampaignLinker(accounts)
    engine = cls(sigs, policy, accounts, scorer=scorer, linker=linker, **kwargs)
    linker.on_change = engine.touch
    return engine


def engine_factory(
    policy: Decider,
    accounts: Mapping[str, Account] | None = None,
    *,
    campaigns: bool = True,
    signals: Callable[[], Sequence[Signal]] | None = None,
    scorer: LogOddsScorer | None = None,
    cls: type[Engine] = Engine,
    **kwargs: Any,
) -> Callable[[], Engine]:
    """What ``detect.replay`` takes: a new engine, new signals and a new linker per call
    (a replay that meets a badly ordered log starts over with a fresh one)."""

    def make() -> Engine:
        sigs = signals() if signals is not None else None
        return build_engine(
            policy, accounts, campaigns=campaigns, signals=sigs, scorer=scorer, cls=cls, **kwargs
        )

    return make
