"""timing.lockstep and its burst windows: batch schedulers stand out, crowds and clocks do not."""

from __future__ import annotations

import random
from typing import Any

from distillwatch.records import Account, SignalValue
from distillwatch.signals.base import EvalContext
from distillwatch.signals.lockstep import Bursts, Lockstep
from tests.factories import T0, exchange

START = T0.timestamp() + 10.0  # ten seconds past a whole minute


def _eval(sig: Lockstep, state: Any, now: float) -> SignalValue:
    return sig.evaluate(state, EvalContext(now=now, account=None, tier="paid", exchanges=0))


def test_a_window_above_the_background_is_a_burst_and_one_inside_it_is_not() -> None:
    b: Bursts[int] = Bursts()
    rng = random.Random(3)
    t = START
    # half an hour of 20 requests a second from many independent senders
    while t < START + 1800:
        t += rng.expovariate(20.0)
        if int(t) % 60 not in (0, 59):
            b.add(rng.randrange(100_000), t)
    assert 35 <= b.threshold() <= 50  # 20 a second by chance, plus five sigmas
    w = int(t) + 5  # a fresh second, off the clock
    for sender in range(30):  # as many as the background puts there: no burst
        b.add(sender, w + 0.01 * sender)
    settled = b.add(-1, w + 3.0)
    assert len(settled) == 30 and not any(hit for _, _, hit, _ in settled)
    for sender in range(80):  # a batch of 80 on top of the background: a burst
        b.add(sender, w + 4 + 0.005 * sender)
    settled = b.add(-1, w + 6.0)
    assert len(settled) == 80 and all(hit for _, _, hit, _ in settled)


def test_a_batch_across_a_second_boundary_is_one_burst() -> None:
    b: Bursts[int] = Bursts()
    for sender in range(8):  # 10.7 s to 11.05 s past the minute: two calendar seconds
        b.add(sender, START + 0.7 + 0.05 * sender)
    settled = b.add(-1, START + 5.0)
    assert [hit for _, _, hit, _ in settled] == [True] * 8


def test_whole_minutes_are_never_bursts() -> None:
    b: Bursts[int] = Bursts()
    minute = int(START // 60 + 1) * 60
    for sender in range(200):  # two hundred cron jobs at hh:mm:00
        b.add(sender, minute + 0.001 * sender)
    settled = b.add(-1, minute + 5.0)
    assert len(settled) == 200 and not any(hit for _, _, hit, _ in settled)


def test_batch_workers_are_in_lockstep_and_bystanders_are_not() -> None:
    sig = Lockstep()
    rng = random.Random(7)
    workers = [sig.new_state() for _ in range(40)]
    backend = sig.new_state()  # an app backend: two requests a second, all day
    cron = sig.new_state()
    e = exchange(0)
    events: list[tuple[float, Any]] = []
    t = START
    while t < START + 6 * 3600:
        for st in rng.sample(workers, 12):  # the scheduler sends a batch of 12 at once
            events.append((t + rng.uniform(0, 0.5), st))
        t += rng.uniform(60, 240)
    t = START
    while t < START + 6 * 3600:
        events.append((t, backend))
        t += rng.expovariate(2.0)
    minute = int(START // 60 + 1) * 60
    events += [(minute + 60.0 * k + 0.1, cron) for k in range(300)]
    events.sort(key=lambda ev: ev[0])
    for at, st in events:
        sig.update(st, e, at)
    end = START + 6 * 3600 + 10
    sig.update(sig.new_state(), e, end)
    worker = _eval(sig, workers[0], end)
    assert worker.value is not None and worker.value >= 0.95
    assert worker.evidence == 1.5
    assert "same second" in worker.explanation
    for bystander in (backend, cron):
        v = _eval(sig, bystander, end)
        assert v.value is not None and v.value < 0.05 and v.evidence == 0.0


def test_too_few_settled_requests_are_unavailable() -> None:
    sig = Lockstep()
    st = sig.new_state()
    for i in range(9):
        sig.update(st, exchange(i), START + 5 * i)
    sig.update(sig.new_state(), exchange(99), START + 100)
    v = _eval(sig, st, START + 100)
    assert not v.available and v.evidence == 0.0


def test_one_organisations_fleet_is_not_a_crowd() -> None:
    sig = Lockstep()
    rng = random.Random(11)
    fleet = [sig.new_state() for _ in range(30)]
    for i, st in enumerate(fleet):  # the engine evaluates an account at its first exchange
        account = Account(account_id=f"svc-{i}", org_id="org_acme")
        sig.evaluate(st, EvalContext(now=START, account=account, tier="enterprise", exchanges=1))
    e = exchange(0)
    t = START
    while t < START + 3600:
        for at, st in sorted(
            ((t + rng.uniform(0, 0.5), st) for st in rng.sample(fleet, 12)), key=lambda x: x[0]
        ):
            sig.update(st, e, at)
        t += rng.uniform(20, 40)
    sig.update(sig.new_state(), e, t + 10)
    v = _eval(sig, fleet[0], t + 10)
    assert v.value == 0.0 and v.evidence == 0.0
