"""harvest.settings_profile: long outputs, n > 1 and logprobs against the population."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, PopulationTail
from distillwatch.signals.harvest import (
    SettingsProfile,
    benign_marker,
    harvest_marker,
)
from tests.factories import exchange


def run(sig: SettingsProfile, stream: Iterable[Exchange]) -> dict[str, SignalValue]:
    """Feed a multi-account stream in order; the last value of every account."""
    states: dict[str, Any] = {}
    last: dict[str, SignalValue] = {}
    for n, e in enumerate(stream, start=1):
        t = e.ts.timestamp()
        st = states.setdefault(e.account_id, sig.new_state())
        sig.update(st, e, t)
        last[e.account_id] = sig.evaluate(
            st, EvalContext(now=t, account=None, tier="paid", exchanges=n)
        )
    return last


def population(accounts: int = 40, each: int = 10) -> list[Exchange]:
    """Chat-like accounts: a temperature, no output budget, no extra samples."""
    return [
        exchange(a * each + i, account=f"chat-{a}", request={"temperature": 0.7, "stream": True})
        for a in range(accounts)
        for i in range(each)
    ]


def account(name: str, requests: list[dict[str, Any]], start: int = 10_000) -> list[Exchange]:
    return [exchange(start + i, account=name, request=r) for i, r in enumerate(requests)]


def test_harvest_settings_on_every_request_give_positive_capped_evidence() -> None:
    harvest = [{"max_tokens": 16_384, "temperature": 1.0}] * 40
    v = run(SettingsProfile(), population() + account("bot", harvest))["bot"]
    assert v.available and v.value == 1.0
    assert 1.0 < v.evidence <= 2.0
    assert v.explanation.startswith("100 % of requests ask for ≥ 8,192 output tokens")


def test_chat_like_account_is_neutral() -> None:
    v = run(SettingsProfile(), population())["chat-0"]
    assert v.available and v.evidence == 0.0


def test_greedy_json_backend_is_slightly_benign() -> None:
    backend = [{"temperature": 0, "response_format": {"type": "json_object"}}] * 30
    v = run(SettingsProfile(), population() + account("cron", backend))["cron"]
    assert -0.5 <= v.evidence < 0.0
    assert "temperature 0 or JSON output" in v.explanation


def test_evidence_is_monotone_in_the_harvest_share() -> None:
    evidence = []
    for hits in (0, 10, 20, 30, 40):
        reqs = [{"max_tokens": 8_192}] * hits + [{"temperature": 0.7}] * (40 - hits)
        evidence.append(run(SettingsProfile(), population() + account("x", reqs))["x"].evidence)
    assert evidence == sorted(evidence)
    assert evidence[0] == 0.0 and evidence[-1] > 1.0


def test_unavailable_without_request_bodies_or_with_too_few() -> None:
    sig = SettingsProfile()
    v = run(sig, [exchange(i, text=None) for i in range(20)])["acct-1"]
    assert not v.available and "no request bodies" in v.explanation
    v = run(sig, account("new", [{"max_tokens": 16_384}] * 3))["new"]
    assert not v.available and "fewer than 5" in v.explanation


@pytest.mark.parametrize(
    ("request_", "completion", "expected"),
    [
        ({"max_tokens": 8_192}, None, True),
        ({"max_completion_tokens": 32_000}, None, True),
        ({"max_tokens": 4_096}, 4_096, False),  # capped below the ceiling: not long
        ({}, 5_000, True),  # no cap and a long completion
        ({}, 300, False),
        ({"n": 3}, None, True),
        ({"n": True}, None, False),  # a bool is not a count
        ({"logprobs": True}, None, True),
        ({"top_logprobs": 0}, None, False),
    ],
)
def test_harvest_marker(request_: dict[str, Any], completion: int | None, expected: bool) -> None:
    assert harvest_marker(request_, completion) is expected


def test_benign_marker() -> None:
    assert benign_marker({"temperature": 0.0})
    assert not benign_marker({"temperature": False})
    assert not benign_marker({"response_format": {"type": "text"}})


def test_population_tail_is_causal_and_refreshes() -> None:
    p = PopulationTail(prior=0.1, prior_tail=0.0, prior_accounts=0.0, min_accounts=1, refresh=1)
    for _ in range(9):
        p.move(None, 0.0)
    assert p.tail(0.5) == 0.0
    p.move(None, 1.0)
    assert p.tail(0.5) == pytest.approx(0.1)
    p.move(1.0, 0.0)  # the account moved back down
    assert p.tail(0.5) == 0.0
