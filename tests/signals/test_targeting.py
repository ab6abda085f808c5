"""Targeting signals: moving traffic to a newly released model within hours."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext
from distillwatch.signals.targeting import EarlySwitch, ModelReleases, NewModelShare
from tests.factories import exchange

HOUR = 3_600.0
RELEASE = 30 * HOUR  # the new model is first served 30 h into the log


def run(sig: NewModelShare | EarlySwitch, stream: Iterable[Exchange]) -> dict[str, SignalValue]:
    states: dict[str, Any] = {}
    last: dict[str, SignalValue] = {}
    for n, e in enumerate(sorted(stream, key=lambda e: (e.ts, e.id)), start=1):
        t = e.ts.timestamp()
        st = states.setdefault(e.account_id, sig.new_state())
        sig.update(st, e, t)
        last[e.account_id] = sig.evaluate(
            st, EvalContext(now=t, account=None, tier="paid", exchanges=n)
        )
    return last


def account(
    name: str, start: float, new_share: float, count: int = 40, step: float = 900.0
) -> list[Exchange]:
    """``count`` requests every ``step`` s from ``start``; ``new_share`` of them (once the
    new model exists) to ``frontier-2``."""
    out = []
    every = round(1 / new_share) if new_share else 0
    for i in range(count):
        t = start + i * step
        new = t >= RELEASE and every and i % every == 0
        out.append(
            exchange(i, account=name, seconds=t, model="frontier-2" if new else "frontier-1")
        )
    return out


def world(adopter: float) -> list[Exchange]:
    """Thirty customers active since the start of the log, a tenth of whose traffic moves."""
    stream = [exchange(i, account="opener", seconds=float(i)) for i in range(3)]
    stream.append(exchange(0, account="launch", seconds=RELEASE, model="frontier-2"))
    for a in range(30):
        stream += account(f"c{a}", 1_000.0 + a, 0.1, count=80)
    stream += account("x", 20 * HOUR, adopter, count=60)
    return stream


def test_moving_most_traffic_to_the_new_model_is_positive_and_capped() -> None:
    v = run(NewModelShare(), world(1.0))["x"]
    assert v.available and v.value is not None and v.value > 0.9
    assert 1.0 < v.evidence <= 1.2
    assert "first seen < 48 h ago" in v.explanation


def test_staying_on_the_old_model_is_neutral() -> None:
    assert run(NewModelShare(), world(0.0))["x"].evidence == 0.0
    assert run(NewModelShare(), world(0.1))["x"].evidence < 0.3


def test_early_switch_counts_only_accounts_active_before_the_release() -> None:
    v = run(EarlySwitch(), world(1.0))["x"]
    assert v.available and 0.5 < v.evidence <= 0.8
    newcomer = account("late", RELEASE + HOUR, 1.0)
    late = run(EarlySwitch(), world(0.0) + newcomer)["late"]
    assert not late.available


def test_unavailable_before_any_release() -> None:
    stream = [exchange(i, seconds=60.0 * i) for i in range(100)]
    v = run(NewModelShare(), stream)["acct-1"]
    assert not v.available and "no new model" in v.explanation


def test_models_from_the_start_and_failed_requests_are_not_releases() -> None:
    r = ModelReleases(warmup=12 * HOUR)
    assert r.observe(exchange(0, model="frontier-1"), 0.0) is None
    assert r.observe(exchange(1, model="frontier-1-mini"), 3 * HOUR) is None  # warm-up
    typo = exchange(2, model="frontier-2-typo", status=404)
    assert r.observe(typo, 20 * HOUR) is None and r.latest is None
    assert r.observe(exchange(3, model="frontier-2"), 21 * HOUR) == 21 * HOUR
    assert r.observe(exchange(4, model="frontier-2"), 22 * HOUR) == 21 * HOUR
    assert r.latest == 21 * HOUR
