"""Content signals: what the prompts ask for (they need prompt text; none on metadata-only logs)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import (
    EvalContext,
    PopulationTail,
    clip,
    computed,
    sampled,
    shrunk,
    unavailable,
)
from distillwatch.signals.registry import register
from distillwatch.signals.text import last_user_text

# Phrases that demand the model's reasoning trace rather than only an answer: the published
# chain-of-thought triggers ("Let's think step by step", Kojima et al. 2022; "Let's work this
# out in a step by step way", Zhou et al. 2022; "Take a deep breath and work on this problem
# step-by-step", Yang et al. 2023; "put your final answer within \boxed{}", the R1-style math
# prompt), requests to show work or intermediate steps, and thinking tags. The trained
# extraction-intent classifier (content.extraction_intent) covers phrasings no list has.
REASONING_DEMAND = re.compile(
    r"step[- ]by[- ]step|steps? of your (reasoning|thinking)|chain[- ]of[- ]thought"
    r"|show (all |me |each |every )?(of )?(your |the )?(intermediate |individual )?"
    r"(work|working|steps|reasoning|derivation|calculations)"
    r"|(explain|describe|detail|write out|lay out|justify) (all |each |every )?(of )?"
    r"(your|the|each|every) (reasoning|thought process|steps?|intermediate steps)"
    r"|(all|each|every) (of the )?intermediate steps"
    r"|(your|the) (thought|thinking|reasoning) process"
    r"|reason(ing)? (carefully|it out|(it )?through|before)|think (it )?through|let'?s think"
    r"|think (carefully|hard|deeply) (about|before|and)|take a deep breath"
    r"|walk me through|(full|complete|detailed) (solution|derivation|reasoning|working)"
    r"|<think(ing)?>|<reasoning>|\\boxed"
    r"|before (giving|stating|writing) (the|your) (final )?answer",
)  # matched against lower-cased text (demands_reasoning)


# Instructions sit at the start or the end of a prompt; the middle is the task's material
# (a long document, code), where a match would mostly be a false one and costs the most time.
EDGE_CHARS = 1200


def demands_reasoning(text: str) -> bool:
    """Whether a prompt asks for the model's reasoning (looked for at its start and end).

    >>> demands_reasoning("What is 17 * 23? Let's think step by step.")
    True
    >>> demands_reasoning("Please reason carefully and show all intermediate steps.")
    True
    >>> demands_reasoning("Put your final answer within \\\\boxed{}.")
    True
    >>> demands_reasoning("What is 17 * 23?")
    False
    """
    if len(text) > 2 * EDGE_CHARS:
        text = text[:EDGE_CHARS] + "\n" + text[-EDGE_CHARS:]
    low = text.lower()
    # every alternative of REASONING_DEMAND contains one of these words: a cheap gate
    if not any(k in low for k in _GATE):
        return False
    return REASONING_DEMAND.search(low) is not None


_GATE = ("step", "thought", "show", "reason", "think", "walk me", "solution", "derivation",
         "working", "answer", "breath", "boxed", "process")  # fmt: skip


@dataclass(slots=True)
class _ShareState:
    seen: int = 0  # exchanges with a request body
    n: int = 0  # of which sampled
    hits: int = 0
    counted: float | None = None  # share last reported to the population baseline


@register
class ReasoningShare:
    """Share of an account's prompts that demand step-by-step reasoning, against the population.

    The estimate is shrunk toward the population's typical share (a Beta prior worth
    ``prior_weight`` prompts), so a handful of prompts cannot move it far; the typical share
    is the median over accounts seen so far (``PopulationTail``), never the future. Prompts
    are sampled per account (``base.sampled``): all of the first few, then one in eight.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = ReasoningShare(); st = sig.new_state()
    >>> ask = {"messages": [{"role": "user", "content": "Solve it step by step: 2+2"}]}
    >>> for i in range(40):
    ...     e = Exchange(id=f"ex{i}", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...                  ip="192.0.2.1", model="m", request=ask)
    ...     sig.update(st, e, float(i))
    >>> sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40)).explanation
    '100 % of 8 sampled prompts demand step-by-step reasoning; typical accounts: 3 %'
    """

    id: ClassVar[str] = "content.reasoning_share"
    version: ClassVar[int] = 3
    family: ClassVar[str] = "content"
    needs_text: ClassVar[bool] = True
    summary: ClassVar[str] = "share of (sampled) prompts that demand step-by-step reasoning"

    def __init__(
        self, prior_share: float = 0.03, prior_weight: float = 10.0, max_evidence: float = 3.5
    ) -> None:
        self.population = PopulationTail(prior=prior_share)
        self.prior_weight = prior_weight
        self.max_evidence = max_evidence
        self.no_text = unavailable(self, "no prompt text in the log")

    def new_state(self) -> _ShareState:
        return _ShareState()

    def update(self, state: _ShareState, exchange: Exchange, t: float) -> None:
        if exchange.request is None:
            return
        state.seen += 1
        if not sampled(state.seen, exchange.id):
            return
        text = last_user_text(exchange.request)
        if text is None:
            return
        state.n += 1
        if demands_reasoning(text):
            state.hits += 1
        if state.n >= self.population.min_n:
            share = state.hits / state.n
            self.population.move(state.counted, share)
            state.counted = share

    def evaluate(self, state: _ShareState, ctx: EvalContext) -> SignalValue:
        if state.n == 0:
            return self.no_text
        typical = max(self.population.typical(), 0.005)
        estimate = shrunk(state.hits, state.n, typical, self.prior_weight)
        evidence = clip(math.log(estimate / typical), -1.0, self.max_evidence)
        share = state.hits / state.n
        return computed(
            self,
            round(share, 4),
            evidence,
            (
                f"{share:.0%} of {state.n} sampled prompts demand step-by-step reasoning; "
                f"typical accounts: {typical:.0%}"
            ).replace("%", " %")
            if ctx.explain
            else "",
        )
