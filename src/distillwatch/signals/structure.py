"""Conversation-structure signals: one-shot questions against real back-and-forth.

A harvesting pipeline sends each problem once, as a fresh single-turn request: one user
message (a system prompt at most), no earlier turns. People in a chat continue
conversations, so many of their requests carry earlier turns. App backends, cron jobs and
evaluation runs are single-turn too, so a high single-turn share is weak evidence; a high
follow-up share is the stronger, benign, side. Only message *roles* are read, never their
text; a log without request bodies leaves the signal unavailable.
"""

from __future__ import annotations

from typing import Any, ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, PopulationTail, computed  # noqa: F401 (examples)
from distillwatch.signals.registry import register
from distillwatch.signals.shares import ShareSignal, ShareState

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


@register
class SingleTurnShare(ShareSignal[ShareState]):
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
    state_type = ShareState

    def __init__(
        self,
        min_requests: int = 5,
        prior_weight: float = 5.0,
        max_weight: int = 64,
        max_evidence: float = 0.6,
        max_benign: float = 1.0,
    ) -> None:
        super().__init__(
            PopulationTail(prior=0.7, prior_tail=0.3),
            min_requests=min_requests,
            prior_weight=prior_weight,
            max_weight=max_weight,
            no_data="no request bodies in the log",
            too_few=f"fewer than {min_requests} conversations so far",
        )
        self.max_evidence = max_evidence
        self.max_benign = max_benign

    def update(self, state: ShareState, exchange: Exchange, t: float) -> None:
        if not exchange.request:
            return
        single = is_single_turn(exchange.request)
        if single is None:
            return
        state.n += 1
        if single:
            state.hits += 1
        if state.n >= self.population.min_n:
            state.bin = self.population.place(state.bin, state.hits / state.n)

    def judge(self, key: tuple[int, ...], typical: float, tails: list[float]) -> SignalValue:
        pct, m, _ = key
        typical = min(max(typical, 0.01), 0.99)
        estimate = self.shrink(pct, m, typical)
        if estimate < typical:  # follow-ups: what people do
            ev = -self.max_benign * (typical - estimate) / typical
        else:
            ev = self.population.surprise(estimate, typical, self.max_evidence)
        return computed(
            self,
            pct / 100,
            round(ev, 2),
            f"{pct} % of requests are single-turn (no earlier turns); "
            f"typical accounts: {int(typical * 100 + 0.5)} %",
        )
