"""Harvest-settings signals: request parameters that get the most output out of each prompt.

A distillation pipeline wants long, complete answers (a large completion budget), several
samples per prompt (``n``) and sometimes the token probabilities (``logprobs``). Each is
ordinary on its own — developers raise ``max_tokens``, evaluators sample ``n > 1`` — so the
signal compares how *often* an account asks for them with how often the population does.
Greedy decoding (temperature 0) and structured JSON output are what app backends, cron
jobs and evaluators send; they count slightly against distillation. These signals read
request parameters only, never prompt text; a log without request bodies leaves them
unavailable.

The population baseline is ``base.PopulationTail``: its median and upper tail are
recomputed every few dozen changes instead of on every call, so ``evaluate`` stays O(1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import (
    EvalContext,
    PopulationTail,
    computed,
    percent,
    ramp,
    unavailable,
)
from distillwatch.signals.registry import register
from distillwatch.signals.shares import ShareSignal, ShareState

LONG_BUDGET = 8_192
"""A completion budget at or above this many tokens counts as asking for long outputs."""
LONG_UNCAPPED = 4_096
"""Without a budget, a completion at least this long counts as a long output."""
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


def harvest_marker(request: dict[str, Any], completion_tokens: int | None) -> bool:
    """Whether a request asks for long outputs, several samples or token probabilities.

    >>> harvest_marker({"max_tokens": 16384}, None), harvest_marker({"max_tokens": 512}, 300)
    (True, False)
    >>> harvest_marker({"n": 4}, None), harvest_marker({"top_logprobs": 5}, None)
    (True, True)
    """
    get = request.get
    budget = get("max_tokens")
    if budget is None:
        budget = get("max_completion_tokens")
        if budget is None:
            budget = get("max_output_tokens")
    if type(budget) is int:  # not bool; a malformed value counts as no budget
        if budget >= LONG_BUDGET:
            return True
    elif completion_tokens is not None and completion_tokens >= LONG_UNCAPPED:
        return True
    n = get("n")
    if type(n) is int and n > 1:
        return True
    if get("logprobs"):
        return True
    top = get("top_logprobs")
    return type(top) is int and top > 0


def benign_marker(request: dict[str, Any]) -> bool:
    """Greedy decoding or structured JSON output: what backends and evaluators send.

    >>> benign_marker({"temperature": 0}), benign_marker({"temperature": 0.7})
    (True, False)
    >>> benign_marker({"response_format": {"type": "json_schema"}})
    True
    """
    get = request.get
    temperature = get("temperature")
    if temperature == 0 and type(temperature) in (int, float):
        return True
    fmt = get("response_format")
    return type(fmt) is dict and fmt.get("type") in _JSON_FORMATS


@dataclass(slots=True)
class _HarvestState(ShareState):
    benign: int = 0


@register
class SettingsProfile(ShareSignal[_HarvestState]):
    """Share of requests asking for long outputs, ``n > 1`` or logprobs, against the population.

    The share (to the per cent) is shrunk toward the population's median by a prior worth
    4 requests against at most 64 of the account's. Above the median, evidence is the
    surprise of the shrunk share under the population's distribution,
    ``ln(0.5 / P(accounts at least as high))`` clipped to [0, 2], scaled by
    ``min(1, share / 0.5)`` so that a rare but small share (a few ``n = 2`` requests)
    counts little; at or below the median it is 0. Requests with temperature 0 or JSON
    output subtract up to 0.5 (``0.5 · benign share · (1 − share)``).

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = SettingsProfile(); st = sig.new_state()
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a", ip="192.0.2.1",
    ...              model="m", request={"max_tokens": 16384, "temperature": 1.0})
    >>> for i in range(40): sig.update(st, e, float(i))
    >>> v = sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40))
    >>> v.evidence, v.explanation
    (0.97, '100 % of requests ask for ≥ 8,192 output tokens, n > 1 or logprobs; 19 % of accounts do so as often')
    """  # noqa: E501

    id: ClassVar[str] = "harvest.settings_profile"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "harvest"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "share of requests asking for long outputs, n > 1 or logprobs"
    state_type = _HarvestState

    def __init__(
        self,
        min_requests: int = 5,
        prior_weight: float = 4.0,
        max_weight: int = 64,
        full_share: float = 0.5,
        max_evidence: float = 2.0,
        max_benign: float = 0.5,
    ) -> None:
        super().__init__(
            PopulationTail(prior=0.05, prior_tail=0.15),
            min_requests=min_requests,
            prior_weight=prior_weight,
            max_weight=max_weight,
            no_data="no request bodies in the log",
            too_few=f"fewer than {min_requests} request bodies so far",
        )
        self.full_share = full_share
        self.max_evidence = max_evidence
        self.max_benign = max_benign

    def update(self, state: _HarvestState, exchange: Exchange, t: float) -> None:
        request = exchange.request
        if not request:
            return
        state.n += 1
        if harvest_marker(request, exchange.completion_tokens):
            state.hits += 1
        if benign_marker(request):
            state.benign += 1
        if state.n >= self.population.min_n:
            state.bin = self.population.place(state.bin, state.hits / state.n)

    def key(self, state: _HarvestState, pct: int, m: int, version: int) -> tuple[int, ...]:
        n = state.n  # the benign share too, in tens of per cent
        return pct, m, version, (20 * state.benign + n) // (2 * n) * 10

    def judge(self, key: tuple[int, ...], typical: float, tails: list[float]) -> SignalValue:
        pct, m, _, benign_pct = key
        share = pct / 100
        pop = self.population
        estimate = self.shrink(pct, m, typical)
        # above the median: how rare, and how substantial
        ev = pop.surprise(estimate, typical, self.max_evidence) * min(share / self.full_share, 1.0)
        ev = round(ev - self.max_benign * benign_pct / 100 * (1.0 - share), 2)
        text = (
            f"{pct} % of requests ask for ≥ {LONG_BUDGET:,} output tokens, n > 1 or "
            f"logprobs; {int(tails[pop.bin_of(estimate)] * 100 + 0.5)} % of accounts do so as often"
        )
        if benign_pct >= 20:
            text += f"; about {benign_pct} % use temperature 0 or JSON output"
        return computed(self, share, ev, text)


TOOL_SLOTS = 8
"""Tool names an account's state counts (a space-saving top-k): O(1) per account."""


def tool_names(request: dict[str, Any]) -> frozenset[str]:
    """The distinct function names among a request's ``tools`` (chat completions or
    Responses API shape); empty without tools.

    >>> sorted(tool_names({"tools": [{"type": "function", "function": {"name": "a"}},
    ...                              {"type": "function", "name": "b"}, "junk"]}))
    ['a', 'b']
    >>> tool_names({"messages": []})
    frozenset()
    """
    tools = request.get("tools")
    if type(tools) is not list or not tools:
        return frozenset()
    names = set()
    for tool in tools:
        if type(tool) is not dict:
            continue
        fn = tool.get("function")
        name = fn.get("name") if type(fn) is dict else tool.get("name")
        if type(name) is str and name:
            names.add(name)
    return frozenset(names)


@dataclass(slots=True)
class _ToolState:
    n: int = 0
    """Requests that carried tool definitions."""
    counts: dict[str, int] = field(default_factory=dict)
    """Space-saving top-``TOOL_SLOTS`` counts of tool names (an overestimate, never under)."""
    memo_key: tuple[int, int] | None = None
    memo: SignalValue | None = None


@register
class ToolRotation:
    """How an account's tool definitions rotate: an application's agent keeps its own tools,
    a capability sweep walks every tool domain in turn.

    Over the requests that carry ``tools``, the share that include the account's most
    frequent tool (``concentration``, counted with a space-saving top-8 of tool names, which
    can only overestimate it). An agent built on one application sends its tool set (or
    most of it) with nearly every request; mapping a model's tool-use skills means sending
    ever-different domains. Evidence 0 at a concentration of 0.5 or more, rising linearly
    to 1.0 at 0.2 or less. Needs 10 requests with tools; platforms that relay many
    customers' agents through one account rotate too, so it is supporting evidence.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = ToolRotation(); st = sig.new_state()
    >>> def ask(name: str) -> Exchange:
    ...     return Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...         ip="192.0.2.1", model="m",
    ...         request={"tools": [{"type": "function", "function": {"name": name}}]})
    >>> for i in range(20): sig.update(st, ask(f"tool_{i % 10}"), float(i))
    >>> v = sig.evaluate(st, EvalContext(now=20.0, account=None, tier="free", exchanges=20))
    >>> v.evidence, v.explanation
    (1.0, 'tools rotate: the most frequent of ≥ 8 tool names is sent with 15 % of the 20 requests carrying tools; an application agent keeps its own tools (≥ 50 %)')
    """  # noqa: E501

    id: ClassVar[str] = "harvest.tool_rotation"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "harvest"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "how often the account's most frequent tool is among its tools"

    def __init__(
        self,
        min_requests: int = 10,
        settled: float = 0.5,
        rotating: float = 0.2,
        max_evidence: float = 1.0,
    ) -> None:
        self.min_requests = min_requests
        self.settled = settled
        self.rotating = rotating
        self.max_evidence = max_evidence
        self.no_tools = unavailable(self, "no requests with tool definitions")
        self.too_few = unavailable(self, f"fewer than {min_requests} requests with tools so far")

    def new_state(self) -> _ToolState:
        return _ToolState()

    def update(self, state: _ToolState, exchange: Exchange, t: float) -> None:
        request = exchange.request
        if not request or "tools" not in request:
            return
        names = tool_names(request)
        if not names:
            return
        state.n += 1
        counts = state.counts
        for name in sorted(names):  # a set's order follows the process's hash seed
            if name in counts:
                counts[name] += 1
            elif len(counts) < TOOL_SLOTS:
                counts[name] = 1
            else:  # space-saving: the new name takes over the smallest slot and its count
                low = min(counts, key=counts.__getitem__)
                counts[name] = counts.pop(low) + 1

    def evaluate(self, state: _ToolState, ctx: EvalContext) -> SignalValue:
        n = state.n
        if n < self.min_requests:
            return self.too_few if n else self.no_tools
        pct = percent(max(state.counts.values()), n)
        key = (pct, min(n, 1000))
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            c = pct / 100
            ev = round(self.max_evidence * ramp(c, self.settled, self.rotating), 2)
            many = "≥ " if len(state.counts) >= TOOL_SLOTS else ""
            text = (
                f"tools rotate: the most frequent of {many}{len(state.counts)} tool names is "
                f"sent with {pct} % of the {n:,} requests carrying tools; an application "
                f"agent keeps its own tools (≥ {int(self.settled * 100)} %)"
                if ev > 0
                else f"the most frequent of {many}{len(state.counts)} tool names is sent with "
                f"{pct} % of the {n:,} requests carrying tools"
            )
            state.memo_key = key
            state.memo = computed(self, c, ev, text)
        return state.memo
