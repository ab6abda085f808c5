"""Sign-up signals: account age, verification, shared cards and sign-up bursts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from distillwatch.detect import Engine
from distillwatch.policy import policy_from_mapping
from distillwatch.records import Account
from distillwatch.signals import create_signals
from distillwatch.signals.base import EvalContext, Signal
from distillwatch.signals.signup import AccountAge, SharedPayment, SignupBurst, Verification
from tests.factories import T0, exchange

NOW = (T0 + timedelta(days=10)).timestamp()


def ctx(account: Account | None, now: float = NOW) -> EvalContext:
    return EvalContext(now=now, account=account, tier="free", exchanges=1)


def acct(name: str, days_before_now: float = 400.0, **fields: Any) -> Account:
    created = T0 + timedelta(days=10) - timedelta(days=days_before_now)
    return Account(account_id=name, created_at=created, **fields)


def test_account_age_is_monotone_and_capped() -> None:
    sig = AccountAge()
    values = [
        sig.evaluate(sig.new_state(), ctx(acct("a", d))) for d in (0.2, 1, 3, 10, 30, 90, 400)
    ]
    evidence = [v.evidence for v in values]
    assert evidence == sorted(evidence, reverse=True)
    assert evidence[0] == 1.2 and evidence[4] == 0.0 and evidence[-1] == -0.3
    assert values[0].explanation.startswith("account opened 4 hours before this request")
    assert values[2].explanation.startswith("account opened 3.0 days before")


def test_account_age_follows_the_time_of_the_exchange() -> None:
    sig, st = AccountAge(), AccountAge().new_state()
    a = acct("a", 0.5)
    first = sig.evaluate(st, ctx(a))
    later = sig.evaluate(st, ctx(a, NOW + 40 * 86_400))
    assert first.evidence == 1.2 and later.evidence < 0


def test_sign_up_signals_are_unavailable_without_metadata() -> None:
    signals: list[Signal] = [AccountAge(), Verification(), SharedPayment(), SignupBurst()]
    for sig in signals:
        v = sig.evaluate(sig.new_state(), ctx(None))
        assert not v.available and "no sign-up metadata" in v.explanation
    bare = Account(account_id="bare")
    assert not AccountAge().evaluate(AccountAge().new_state(), ctx(bare)).available
    assert not Verification().evaluate(Verification().new_state(), ctx(bare)).available


def test_verification() -> None:
    sig = Verification()
    assert sig.evaluate(sig.new_state(), ctx(acct("a", verified=True))).evidence == -0.5
    assert sig.evaluate(sig.new_state(), ctx(acct("a", verified=False))).evidence == 0.2


def card_ring() -> dict[str, Account]:
    """Six accounts on one card a day apart (the last two opened after NOW), and a loner."""
    ring = {
        f"r{i}": acct(f"r{i}", 4 - i, payment_fingerprint="pm_ring", email_domain="gmail.com")
        for i in range(6)
    }
    ring["solo"] = acct("solo", 100, payment_fingerprint="pm_solo")
    return ring


def test_shared_card_counts_only_accounts_created_before_now() -> None:
    accounts = card_ring()
    sig = SharedPayment()
    sig.bind(accounts)
    v = sig.evaluate(sig.new_state(), ctx(accounts["r0"]))
    assert v.value == 4.0  # r1..r4 exist at NOW; r5 is opened a day later
    assert v.evidence == pytest.approx(min(1.5, 0.6 * 1.609), abs=0.01)
    later = sig.evaluate(sig.new_state(), ctx(accounts["r0"], NOW + 2 * 86_400))
    assert later.value == 5.0 and later.evidence > v.evidence
    solo = sig.evaluate(sig.new_state(), ctx(accounts["solo"]))
    assert solo.value == 0.0 and solo.evidence == 0.0


def test_shared_card_inside_one_organisation_is_not_counted() -> None:
    office = {
        f"o{i}": acct(f"o{i}", 100, payment_fingerprint="pm_office", org_id="org_1")
        for i in range(20)
    }
    office["outsider"] = acct("outsider", 50, payment_fingerprint="pm_office")
    sig = SharedPayment()
    sig.bind(office)
    assert sig.evaluate(sig.new_state(), ctx(office["o0"])).value == 1.0  # the outsider
    assert sig.evaluate(sig.new_state(), ctx(office["outsider"])).value == 20.0


def test_shared_payment_needs_the_table() -> None:
    v = SharedPayment().evaluate(
        SharedPayment().new_state(), ctx(acct("a", payment_fingerprint="x"))
    )
    assert not v.available and "not bound" in v.explanation


def test_engine_binds_the_accounts_table() -> None:
    accounts = card_ring()
    policy = policy_from_mapping(
        {
            "name": "p",
            "version": 1,
            "min_exchanges": 1,
            "thresholds": {"monitor": 0.5, "throttle": 0.8, "protect": 0.9, "block": 0.99},
        }
    )
    engine = Engine(create_signals(["signup.shared_payment"]), policy, accounts)
    engine.observe(exchange(0, account="r0", seconds=10 * 86_400))
    (verdict,) = [v for v in engine.verdicts() if v.account_id == "r0"]
    assert verdict.evidence is not None
    assert verdict.evidence.signals["signup.shared_payment"] == 4.0


def burst_world() -> dict[str, Account]:
    """A campaign of 12 opened within the hour on one domain; steady sign-ups on another."""
    world = {f"c{i}": acct(f"c{i}", 5 - i / 300, email_domain="mail.example") for i in range(12)}
    for i in range(300):  # big.example: one sign-up every 8 hours for 100 days
        world[f"b{i}"] = acct(f"b{i}", 100 - i / 3, email_domain="big.example")
    world["class0"] = acct("class0", 5, email_domain="school.edu", org_id="org_class")
    world["class1"] = acct("class1", 5, email_domain="school.edu", org_id="org_class")
    return world


def test_sign_up_burst_stands_out_from_the_domain_s_usual_rate() -> None:
    world = burst_world()
    sig = SignupBurst()
    sig.bind(world)
    burst = sig.evaluate(sig.new_state(), ctx(world["c0"]))
    assert burst.value == 11.0 and 1.0 < burst.evidence <= 1.5
    steady = sig.evaluate(sig.new_state(), ctx(world["b150"]))
    assert steady.evidence == 0.0
    same_org = sig.evaluate(sig.new_state(), ctx(world["class0"]))
    assert same_org.value == 0.0


def test_sign_up_burst_is_causal() -> None:
    world = burst_world()
    sig = SignupBurst()
    sig.bind(world)
    c0 = world["c0"]
    assert c0.created_at is not None
    early = c0.created_at.timestamp() + 1_800  # half an hour after c0 opened
    v = sig.evaluate(sig.new_state(), ctx(c0, early))
    assert v.value is not None and v.value < 11.0
