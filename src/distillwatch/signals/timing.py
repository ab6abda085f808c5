"""Timing signals: how machine-like the rhythm of an account's requests is."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, clip, computed, ramp, ramped_share, unavailable
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
        self._too_few_gaps = [
            unavailable(self, f"{n} in-session gaps, needs {min_gaps}") for n in range(min_gaps)
        ]

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
            return self._too_few_gaps[state.n]
        sigma = math.sqrt(state.m2 / (state.n - 1))
        # Linear from +max at σ=0 to 0 at the threshold, mildly negative for human-like spread.
        evidence = clip(
            self.max_evidence * (1.0 - sigma / self.regular_below), -0.5, self.max_evidence
        )
        text = ""
        if ctx.explain:
            text = (
                f"gaps between requests vary by a factor of {math.exp(sigma):.2f} "
                f"(σ of log-gap {sigma:.2f}, typical gap {math.exp(state.mean):.1f} s); "
                f"people vary by 3× or more"
            )
        return computed(self, round(sigma, 3), evidence, text)


HOUR = 3_600.0
QUIET_HOURS = 6


_WINDOWS_OF_HOUR = tuple(tuple((h - k) % 24 for k in range(QUIET_HOURS)) for h in range(24))
"""The 6-hour windows (by starting hour) that contain each hour of the day."""


@dataclass(slots=True)
class _DayState:
    # windows[s]: decayed activity in hours s .. s+5 (mod 24); its minimum is the quiet share
    windows: array[float] = field(default_factory=lambda: array("d", bytes(8 * 24)))
    total: float = 0.0
    ref_t: float | None = None
    first_t: float | None = None
    last_t: float | None = None
    n: int = 0
    memo_key: tuple[int, float] | None = None
    memo: SignalValue | None = None


@register
class DiurnalRest:
    """Activity without a daily rest: the share of requests in the quietest 6 hours of the day.

    A 24-bucket histogram of UTC hours, decayed with a time constant of three days, kept as
    its 24 six-hour window sums (O(1) state and update; the quiet share is their minimum). People sleep: their quietest six hours hold a few per cent of their requests
    (under 8 %); a machine working around the clock spreads evenly (25 %). Evidence rises
    from 0 at 8 % to 1.2 at 18 %, −0.3 below 3 % with 50 requests. Needs 20 requests over a
    day. Backends, cron jobs and worldwide apps run around the clock too: supporting
    evidence only.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = DiurnalRest(); st = sig.new_state()
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a", ip="192.0.2.1",
    ...              model="m")
    >>> for i in range(96): sig.update(st, e, 1_800.0 * i)
    >>> sig.evaluate(st, EvalContext(now=172_800.0, account=None, tier="free", exchanges=96)).explanation
    'the quietest 6 hours of the day hold 22 % of requests (no daily rest); people: under 8 %'
    """  # noqa: E501

    id: ClassVar[str] = "timing.diurnal_rest"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "timing"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "share of requests in the quietest 6 hours of the day"

    def __init__(
        self,
        tau: float = 3 * 86_400.0,
        min_requests: int = 20,
        min_span: float = 86_400.0,
        low: float = 0.08,
        high: float = 0.18,
        max_evidence: float = 1.2,
    ) -> None:
        self.tau = tau
        self.min_requests = min_requests
        self.min_span = min_span
        self.low = low
        self.high = high
        self.max_evidence = max_evidence
        self.too_few = unavailable(
            self, f"fewer than {min_requests} requests over {min_span / HOUR:.0f} h"
        )

    def new_state(self) -> _DayState:
        return _DayState()

    def update(self, state: _DayState, exchange: Exchange, t: float) -> None:
        if state.ref_t is None:
            state.ref_t = state.first_t = t
        # weights grow as exp((t - ref)/tau) instead of decaying every bucket: O(1) per event
        x = (t - state.ref_t) / self.tau
        windows = state.windows
        if x > 30.0:
            scale = math.exp(-x)
            for i in range(24):
                windows[i] *= scale
            state.total *= scale
            state.ref_t, x = t, 0.0
        w = math.exp(x)
        for s in _WINDOWS_OF_HOUR[int(t // HOUR) % 24]:
            windows[s] += w
        state.total += w
        state.n += 1
        state.last_t = t

    def evaluate(self, state: _DayState, ctx: EvalContext) -> SignalValue:
        first, last = state.first_t, state.last_t
        if (
            state.n < self.min_requests
            or first is None
            or last is None
            or last - first < self.min_span
        ):
            return self.too_few
        pct = int(100 * min(state.windows) / state.total + 0.5)
        if pct < 3 and state.n >= 50:
            evidence = -0.3
        else:
            evidence = round(self.max_evidence * ramp(pct / 100, self.low, self.high), 2)
        key = (pct, evidence)
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            rest = " (no daily rest)" if pct / 100 >= self.low else ""
            state.memo_key = key
            state.memo = computed(
                self,
                pct / 100,
                evidence,
                f"the quietest {QUIET_HOURS} hours of the day hold {pct} % of requests"
                f"{rest}; people: under {round(self.low * 100)} %",
            )
        return state.memo


@dataclass(slots=True)
class _FlightState:
    n: int = 0
    overlapped: int = 0
    busy_until: float = -math.inf
    memo_key: tuple[int, float] | None = None
    memo: SignalValue | None = None


@register
class Concurrency:
    """Share of requests sent while an earlier one was still being answered.

    A request is in flight from its arrival until ``latency_ms`` later (one second when no
    latency is logged, so sub-second gaps count too). People chatting wait for the answer
    and read it; pipelines fan out. So do app backends and batch evaluations: evidence
    rises from 0 at 10 % to 0.6 at 60 % and needs 20 requests.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = Concurrency(); st = sig.new_state()
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a", ip="192.0.2.1",
    ...              model="m", latency_ms=4_000.0)
    >>> for i in range(40): sig.update(st, e, 2.0 * i)
    >>> sig.evaluate(st, EvalContext(now=80.0, account=None, tier="free", exchanges=40)).evidence
    0.6
    """

    id: ClassVar[str] = "timing.concurrency"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "timing"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "share of requests sent while an earlier one was in flight"

    def __init__(
        self,
        min_requests: int = 20,
        default_flight: float = 1.0,
        low: float = 0.1,
        high: float = 0.6,
        max_evidence: float = 0.6,
    ) -> None:
        self.min_requests = min_requests
        self.default_flight = default_flight
        self.low = low
        self.high = high
        self.max_evidence = max_evidence
        self.too_few = unavailable(self, f"fewer than {min_requests} requests so far")

    def new_state(self) -> _FlightState:
        return _FlightState()

    def update(self, state: _FlightState, exchange: Exchange, t: float) -> None:
        state.n += 1
        if t < state.busy_until:
            state.overlapped += 1
        latency = exchange.latency_ms
        end = t + (latency / 1000.0 if latency is not None else self.default_flight)
        if end > state.busy_until:
            state.busy_until = end

    def evaluate(self, state: _FlightState, ctx: EvalContext) -> SignalValue:
        if state.n < self.min_requests:
            return self.too_few
        return ramped_share(
            self,
            state,
            state.overlapped,
            state.n,
            (self.low, self.high, self.max_evidence),
            "{pct} % of requests were sent while an earlier one was still being answered; "
            "people send one at a time",
        )
