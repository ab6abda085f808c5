"""Timing signals: how machine-like the rhythm of an account's requests is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, clip, unavailable
from distillwatch.signals.registry import register

SESSION_GAP = 3_600.0
"""Gaps longer than this are breaks between sessions, not the rhythm within one."""
MIN_GAP = 0.001


@dataclass(slots=True)
class _GapState:
    last_t: float | None = None
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0


@register
class InterArrivalRegularity:
    """Spread of the log of within-session inter-arrival gaps (Welford, O(1) state).

    People pause irregularly (σ of log-gap ≳ 1; a Poisson process gives 1.28); a script
    sending on a timer gives σ near 0. Cron jobs are regular too, so the evidence is
    moderate and needs other signals to convict.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = InterArrivalRegularity(); st = sig.new_state()
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a", ip="192.0.2.1",
    ...              model="m")
    >>> for i in range(50): sig.update(st, e, 10.0 * i)
    >>> sig.evaluate(st, EvalContext(now=500.0, account=None, tier="free", exchanges=50)).value
    0.0
    """

    id: ClassVar[str] = "timing.regularity"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "timing"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "how regular the gaps between an account's requests are"

    def __init__(
        self, min_gaps: int = 20, regular_below: float = 0.5, max_evidence: float = 2.0
    ) -> None:
        self.min_gaps = min_gaps
        self.regular_below = regular_below
        self.max_evidence = max_evidence

    def new_state(self) -> _GapState:
        return _GapState()

    def update(self, state: _GapState, exchange: Exchange, t: float) -> None:
        last, state.last_t = state.last_t, t
        if last is None:
            return
        gap = t - last
        if gap > SESSION_GAP:
            return
        x = math.log(max(gap, MIN_GAP))
        state.n += 1
        delta = x - state.mean
        state.mean += delta / state.n
        state.m2 += delta * (x - state.mean)

    def evaluate(self, state: _GapState, ctx: EvalContext) -> SignalValue:
        if state.n < self.min_gaps:
            return unavailable(self, f"{state.n} in-session gaps, needs {self.min_gaps}")
        sigma = math.sqrt(state.m2 / (state.n - 1))
        # Linear from +max at σ=0 to 0 at the threshold, mildly negative for human-like spread.
        evidence = clip(
            self.max_evidence * (1.0 - sigma / self.regular_below), -0.5, self.max_evidence
        )
        typical = math.exp(state.mean)
        return SignalValue(
            signal_id=self.id,
            version=self.version,
            value=round(sigma, 3),
            evidence=evidence,
            explanation=(
                f"gaps between requests vary by a factor of {math.exp(sigma):.2f} "
                f"(σ of log-gap {sigma:.2f}, typical gap {typical:.1f} s); "
                f"people vary by 3× or more"
            ),
        )
