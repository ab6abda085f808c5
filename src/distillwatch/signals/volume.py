"""Volume signals: how much an account asks for, against what its tier normally uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, clip, computed
from distillwatch.signals.registry import register

DAY = 86_400.0

TIER_DAILY_VOLUME: dict[str, float] = {
    "free": 150.0,
    "paid": 1_500.0,
    "research": 3_000.0,
    "enterprise": 30_000.0,
}
"""Exchanges a day that a heavy but ordinary account of each tier reaches (tunable)."""
DEFAULT_DAILY_VOLUME = TIER_DAILY_VOLUME["paid"]


@dataclass(slots=True)
class _VolumeState:
    decayed: float = 0.0
    last_t: float | None = None


@register
class TierRate:
    """Exchanges in the last day (exponentially decayed) against the tier's heavy-use level.

    Evidence grows with the log of the ratio and is capped: volume alone never convicts,
    because app backends and evaluation runs are legitimately heavy.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = TierRate(); st = sig.new_state()
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a", ip="192.0.2.1",
    ...              model="m")
    >>> for i in range(600): sig.update(st, e, 1_000.0 + i)
    >>> v = sig.evaluate(st, EvalContext(now=1_600.0, account=None, tier="free", exchanges=600))
    >>> v.explanation
    '598 exchanges in the last day, 4.0× the free tier’s heavy use (150)'
    """

    id: ClassVar[str] = "volume.tier_rate"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "volume"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "exchanges in the last day against the tier's heavy-use level"

    def __init__(self, budgets: dict[str, float] | None = None, max_evidence: float = 3.0) -> None:
        self.budgets = dict(TIER_DAILY_VOLUME if budgets is None else budgets)
        self.max_evidence = max_evidence

    def new_state(self) -> _VolumeState:
        return _VolumeState()

    def update(self, state: _VolumeState, exchange: Exchange, t: float) -> None:
        if state.last_t is not None:
            state.decayed *= math.exp(-max(t - state.last_t, 0.0) / DAY)
        state.decayed += 1.0
        state.last_t = t

    def evaluate(self, state: _VolumeState, ctx: EvalContext) -> SignalValue:
        level = state.decayed
        if state.last_t is not None:
            level *= math.exp(-max(ctx.now - state.last_t, 0.0) / DAY)
        budget = self.budgets.get(ctx.tier, DEFAULT_DAILY_VOLUME)
        ratio = level / budget
        evidence = clip(math.log(max(ratio, 1e-9)), -1.0, self.max_evidence)
        text = ""
        if ctx.explain:
            tier = ctx.tier if ctx.tier in self.budgets else "default"
            text = (
                f"{level:,.0f} exchanges in the last day, {ratio:.1f}× the {tier} "
                f"tier’s heavy use ({budget:,.0f})"
            )
        return computed(self, round(level, 1), evidence, text)
