"""structure.single_turn: one-shot requests against conversations with follow-ups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext
from distillwatch.signals.structure import SingleTurnShare, is_single_turn
from tests.factories import exchange

ONE = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]}
FOLLOW_UP = {
    "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "and why?"},
    ]
}


def run(sig: SingleTurnShare, stream: Iterable[Exchange]) -> dict[str, SignalValue]:
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


def accounts(prefix: str, count: int, requests: list[dict[str, Any]], start: int) -> list[Exchange]:
    return [
        exchange(start + a * len(requests) + i, account=f"{prefix}-{a}", request=r)
        for a in range(count)
        for i, r in enumerate(requests)
    ]


def chat_population() -> list[Exchange]:
    """People in a chat: half of their requests are follow-ups."""
    return accounts("chat", 40, [ONE, FOLLOW_UP] * 5, start=0)


def test_one_shot_account_among_chatters_is_moderately_positive() -> None:
    v = run(SingleTurnShare(), chat_population() + accounts("bot", 1, [ONE] * 50, 10_000))["bot-0"]
    assert v.value == 1.0
    assert 0.3 < v.evidence <= 0.6
    assert "typical accounts: 5" in v.explanation


def test_follow_ups_are_benign() -> None:
    stream = chat_population() + accounts("talker", 1, [ONE, FOLLOW_UP, FOLLOW_UP] * 10, 10_000)
    v = run(SingleTurnShare(), stream)["talker-0"]
    assert -1.0 <= v.evidence < -0.2


def test_single_turn_is_no_evidence_where_everyone_is_single_turn() -> None:
    backends = accounts("app", 40, [ONE] * 10, start=0)
    v = run(SingleTurnShare(), backends + accounts("bot", 1, [ONE] * 50, 10_000))["bot-0"]
    assert v.evidence == 0.0


def test_roles_without_text_are_enough() -> None:
    stripped = {"messages": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}]}
    v = run(SingleTurnShare(), accounts("x", 1, [stripped] * 10, 0))["x-0"]
    assert v.available and v.value == 0.0


def test_unavailable_without_request_bodies() -> None:
    v = run(SingleTurnShare(), [exchange(i, text=None) for i in range(10)])["acct-1"]
    assert not v.available and "no request bodies" in v.explanation
    v = run(SingleTurnShare(), accounts("x", 1, [{"input": "embed me"}] * 10, 0))["x-0"]
    assert not v.available  # neither a chat nor a completion: not counted


def test_is_single_turn() -> None:
    assert is_single_turn({"prompt": "Once upon a time"}) is True
    assert is_single_turn({"messages": [{"role": "user"}, {"role": "tool"}]}) is False
    assert is_single_turn({"messages": [{"role": "user"}, {"role": "user"}]}) is False
    assert is_single_turn({"messages": [{"role": "system"}]}) is None
    assert is_single_turn({"messages": ["not a message", {"role": "user"}]}) is True
