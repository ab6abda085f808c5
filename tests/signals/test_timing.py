"""timing.diurnal_rest and timing.concurrency (timing.regularity: the contract suite)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext
from distillwatch.signals.timing import Concurrency, DiurnalRest
from tests.factories import exchange

HOUR = 3_600.0


def last(sig: DiurnalRest | Concurrency, stream: Iterable[Exchange]) -> SignalValue:
    st: Any = sig.new_state()
    v = None
    for n, e in enumerate(stream, start=1):
        t = e.ts.timestamp()
        sig.update(st, e, t)
        v = sig.evaluate(st, EvalContext(now=t, account=None, tier="paid", exchanges=n))
    assert v is not None
    return v


def test_around_the_clock_activity_has_no_daily_rest() -> None:
    stream = [exchange(i, seconds=i * 1_337.0) for i in range(200)]  # three days, every 22 min
    v = last(DiurnalRest(), stream)
    assert v.value is not None and v.value > 0.18
    assert v.evidence == 1.2
    assert "no daily rest" in v.explanation


def office_hours(days: int, per_hour: int = 4) -> list[Exchange]:
    out: list[Exchange] = []
    for d in range(days):
        for h in range(9, 18):
            for k in range(per_hour):
                i = len(out)
                out.append(exchange(i, seconds=d * 86_400 + h * HOUR + k * 600.0))
    return out


def test_a_person_s_working_day_rests_at_night() -> None:
    v = last(DiurnalRest(), office_hours(3))
    assert v.value == 0.0 and v.evidence == -0.3


def test_diurnal_rest_needs_a_day_of_activity() -> None:
    v = last(DiurnalRest(), [exchange(i, seconds=i * 60.0) for i in range(300)])  # five hours
    assert not v.available and "over 24 h" in v.explanation


def test_diurnal_histogram_stays_bounded_over_months() -> None:
    sig = DiurnalRest()
    st = sig.new_state()
    for i in range(2_000):  # two months, every 45 minutes: the weights are rescaled, not overflowed
        sig.update(st, exchange(i), i * 2_700.0)
    assert len(st.windows) == 24 and all(x < 1e15 for x in st.windows) and st.total < 1e15
    v = sig.evaluate(
        st, EvalContext(now=2_000 * 2_700.0, account=None, tier="paid", exchanges=2_000)
    )
    assert v.evidence == 1.2


def test_requests_in_flight_together_are_concurrency() -> None:
    stream = [exchange(i, seconds=i * 0.5, latency_ms=3_000.0) for i in range(40)]
    v = last(Concurrency(), stream)
    assert v.value is not None and v.value > 0.9 and v.evidence == 0.6


def test_one_at_a_time_is_not_concurrency() -> None:
    stream = [exchange(i, seconds=i * 60.0, latency_ms=3_000.0) for i in range(40)]
    assert last(Concurrency(), stream).evidence == 0.0
    no_latency = [exchange(i, seconds=i * 0.4) for i in range(40)]  # sub-second gaps count
    assert last(Concurrency(), no_latency).value == 0.98  # 39 of 40
    v = last(Concurrency(), stream[:10])
    assert not v.available
