"""Conversation-structure signals: one-shot questions against real back-and-forth.

A harvesting pipeline sends each problem once, as a fresh single-turn request: one user
message (a system prompt at most), no earlier turns. People in a chat continue
conversations, so many of their requests carry earlier turns. App backends, cron jobs and
evaluation runs are single-turn too, so a high single-turn share is weak evidence; a high
follow-up share is the stronger, benign, side. Only message *roles* are read, never their
text; a log without request bodies leaves the signal unavailable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, PopulationTail, unavailable
from distillwatch.signals.registry import register

_EARLIER_TURN_ROLES = frozenset({"assistant", "tool", "function"})


def is_single_turn(request: dict[str, Any]) -> bool | None:
    """True for a fresh one-shot request, False for a follow-up, None when it is neither.

    A completions-style ``prompt`` is single-turn; a chat request is single-turn when it
    holds exactly one user message and no assistant or tool turns.

    >>> is_single_turn({"messages": [{"role": "system"}, {"role": "user", "content": "Hi"}]})
    True
    >>> is_single_turn({"messages": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}]})
    False
    >>> is_single_turn({"input": "text to embed"}) is None
    True
    """
    messages = request.get("messages")
    if not isinstance(messages, list):
        return True if "prompt" in request else None
    users = 0
    for m in messages:
        role = m.get("role") if isinstance(m, dict) else None
        if role in _EARLIER_TURN_ROLES:
            return False
        if role == "user":
            users += 1
            if users > 1:
                return False
    return True if users == 1 else None


@dataclass(slots=True)
class _TurnState:
    n: int = 0
    single: int = 0
    bin: int = -1  # the population bin this account is counted in (−1: not yet)
    memo_key: tuple[int, int, int] | None = None
    memo: SignalValue | None = None


@register
class SingleTurnShare:
    """Share of single-turn requests (no earlier turns), against the population.

    With ``s`` the account's share (to the per cent, shrunk toward the population median
    ``m`` by a prior worth 5 requests against at most 64 of the account's): above the
    median, evidence is the surprise of ``s`` under the population,
    ``ln(0.5 / P(accounts at least as single-turn))`` clipped to [0, 0.6] — nothing when
    most accounts are single-turn anyway; below it, ``−1.0 · (m − s)/m``: follow-ups are
    what people do; one-shot requests are what every program does.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = SingleTurnShare(); st = sig.new_state()
    >>> one = {"messages": [{"role": "user", "content": "Prove that √2 is irrational."}]}
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a", ip="192.0.2.1",
    ...              model="m", request=one)
    >>> for i in range(40): sig.update(st, e, float(i))
    >>> v = sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40))
    >>> v.evidence, v.explanation
    (0.41, '100 % of requests are single-turn (no earlier turns); typical accounts: 70 %')
    """

    id: ClassVar[str] = "structure.single_turn"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "structure"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "share of requests that are one-shot, with no earlier turns"

    def __init__(
        self,
        min_requests: int = 5,
        prior_weight: float = 5.0,
        max_weight: int = 64,
        max_evidence: float = 0.6,
        max_benign: float = 1.0,
    ) -> None:
        self.population = PopulationTail(prior=0.7, prior_tail=0.3)
        self.min_requests = min_requests
        self.prior_weight = prior_weight
        self.max_weight = max_weight
        self.max_evidence = max_evidence
        self.max_benign = max_benign
        self.no_bodies = unavailable(self, "no request bodies in the log")
        self.too_few = unavailable(self, f"fewer than {min_requests} conversations so far")

    def new_state(self) -> _TurnState:
        return _TurnState()

    def update(self, state: _TurnState, exchange: Exchange, t: float) -> None:
        if not exchange.request:
            return
        single = is_single_turn(exchange.request)
        if single is None:
            return
        state.n += 1
        if single:
            state.single += 1
        if state.n >= self.population.min_n:
            state.bin = self.population.place(state.bin, state.single / state.n)

    def evaluate(self, state: _TurnState, ctx: EvalContext) -> SignalValue:
        n = state.n
        if n < self.min_requests:
            return self.too_few if n else self.no_bodies
        pop = self.population
        typical, tails = pop.view()
        # an integer key first: heavy accounts' shares settle, so most calls end here
        pct = (200 * state.single + n) // (2 * n)
        m = n if n < self.max_weight else self.max_weight
        key = (pct, m, pop.version)
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            typical = min(max(typical, 0.01), 0.99)
            w = self.prior_weight
            shrunk = (pct / 100 * m + w * typical) / (m + w)
            b = pop.bin_of(shrunk)
            if b > pop.bin_of(typical):
                ev = min(max(math.log(0.5 / tails[b]), 0.0), self.max_evidence)
            elif shrunk >= typical:
                ev = 0.0
            else:
                ev = -self.max_benign * (typical - shrunk) / typical
            ev = round(ev, 2)
            typical_pct = int(typical * 100 + 0.5)
            state.memo_key = key
            state.memo = SignalValue(
                signal_id=self.id,
                version=self.version,
                value=pct / 100,
                evidence=ev,
                explanation=(
                    f"{pct} % of requests are single-turn (no earlier turns); "
                    f"typical accounts: {typical_pct} %"
                ),
            )
        return state.memo
