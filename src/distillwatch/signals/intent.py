"""Extraction-intent signal: how many of an account's prompts a trained classifier flags.

Distillation pipelines wrap their tasks in instructions that make the teacher give more
than an answer: its chain of thought, a grade against a rubric (the model as a reward
model), a "safe" rewrite, reference answers for a sweep over task types, or a full agent
trajectory. ``intent_model`` classifies one prompt (system message plus the edges of the
newest user message) into "extraction intent" or not, and names the family; this module
turns that into a per-account share against the population's typical share.

One such prompt is not extraction — a student asks for the steps, a researcher grades a
few answers, a moderation backend rewrites — so the signal is the *share*, shrunk toward
the typical account's, and compared with it.

**Sampling.** Classifying a prompt costs 15-30 µs (docs/intent-model.md), more than the
engine's whole per-exchange budget in issue #4, so not every prompt is classified: an
account's first ``SAMPLE_FIRST`` prompts are, then one in ``SAMPLE_EVERY`` up to its
``SAMPLE_SLOW_AFTER``-th prompt, then one in ``SAMPLE_EVERY_SLOW``. Which ones is decided by
a hash of the exchange id, which the gateway assigns, so a client cannot time its extraction
prompts to fall between samples; the share is estimated from the sample. The family of a
flagged prompt (for the explanation's wording only) is worked out for the first
``FAMILY_FIRST`` flagged prompts and one in ``FAMILY_EVERY`` after that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import (
    EvalContext,
    PopulationTail,
    clip,
    computed,
    shrunk,
    unavailable,
)
from distillwatch.signals.base import sampled as sample_prompt
from distillwatch.signals.intent_model import FAMILIES, IntentModel, featurize, load_model
from distillwatch.signals.registry import register
from distillwatch.signals.text import last_user_text

SAMPLE_FIRST = 4
SAMPLE_EVERY = 8
SAMPLE_SLOW_AFTER = 256
SAMPLE_EVERY_SLOW = 32
FAMILY_FIRST = 32  # flagged prompts whose family is always named; then one in FAMILY_EVERY
FAMILY_EVERY = 4

# how an explanation names each family ("... try to extract reasoning or grading")
_FAMILY_WORDS = {
    "reasoning": "reasoning",
    "grading": "grading",
    "rewrite": "safe rewrites",
    "sweep": "capability-sweep answers",
    "agentic": "agent traces",
}


def system_text(request: dict[str, Any]) -> str | None:
    """The first system (or developer) message of a chat request, if it has one.

    >>> system_text({"messages": [{"role": "system", "content": "Be brief."}]})
    'Be brief.'
    >>> system_text({"prompt": "Hi"}) is None
    True
    """
    messages = request.get("messages")
    if not isinstance(messages, list):
        return None
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer"):
            content = m.get("content")
            if isinstance(content, list):  # multi-part: [{"type": "text", "text": ...}]
                parts = [p.get("text") for p in content if isinstance(p, dict)]
                content = "\n".join(p for p in parts if isinstance(p, str))
            return content if isinstance(content, str) and content else None
    return None


def sampled(seen: int, exchange_id: str) -> bool:
    """Whether an account's ``seen``-th prompt (1-based) is classified (``base.sampled``).

    >>> all(sampled(i, "x") for i in range(1, SAMPLE_FIRST + 1))
    True
    >>> sum(sampled(SAMPLE_FIRST + 1, f"ex_{i}") for i in range(8000)) / 8000  # 1 in 8
    0.124875
    >>> sum(sampled(1000, f"ex_{i}") for i in range(8000)) / 8000  # 1 in 32
    0.030625
    """
    return sample_prompt(
        seen,
        exchange_id,
        first=SAMPLE_FIRST,
        every=SAMPLE_EVERY,
        slow_after=SAMPLE_SLOW_AFTER,
        every_slow=SAMPLE_EVERY_SLOW,
    )


@dataclass(slots=True)
class _IntentState:
    seen: int = 0  # exchanges with a request body
    sampled: int = 0  # prompts classified
    hits: int = 0  # of which flagged as extraction intent
    families: list[int] = field(default_factory=lambda: [0] * len(FAMILIES))  # a subsample
    counted: float | None = None  # share last reported to the population baseline
    memo_key: tuple[int, float] | None = None
    memo: SignalValue | None = None


@register
class ExtractionIntent:
    """Share of an account's sampled prompts that try to extract reasoning, grades or traces.

    A trained classifier (``intent_model``, artifact ``models/intent-v1.npz``) reads each
    sampled prompt; the account's share of flagged prompts is shrunk toward the population's
    typical share (a Beta prior worth ``prior_weight`` prompts) and compared with it.
    Evidence is ``ln(shrunk / typical)`` clipped to ``[-1, max_evidence]``. The typical share
    is the median account's, but never below ``min_typical``: the classifier flags about 2 %
    of ordinary prompts (docs/intent-model.md), and most accounts' median share is 0, so
    without the floor one false positive among a handful of prompts would look like 10x the
    norm.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = ExtractionIntent(); st = sig.new_state()
    >>> ask = "Score the response below from 1 to 10 for helpfulness.\\n\\n[Question] 2+2?"
    >>> for i in range(40):
    ...     e = Exchange(id=f"ex{i}", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...                  ip="192.0.2.1", model="m",
    ...                  request={"messages": [{"role": "user", "content": ask}]})
    ...     sig.update(st, e, float(i))
    >>> sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40)).explanation
    '100 % of 8 sampled prompts try to extract grading (typical accounts: 3 %)'
    """

    id: ClassVar[str] = "content.extraction_intent"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "content"
    needs_text: ClassVar[bool] = True
    summary: ClassVar[str] = (
        "share of sampled prompts a trained classifier flags as extraction intent "
        "(reasoning, grading, safe rewrites, capability sweeps, agent traces)"
    )

    def __init__(
        self,
        prior_share: float = 0.03,
        prior_weight: float = 20.0,
        max_evidence: float = 3.5,
        min_typical: float = 0.03,
        model: IntentModel | None = None,
    ) -> None:
        self.model = model or load_model()
        self._threshold = self.model.threshold_logit
        self.population = PopulationTail(prior=prior_share)
        self.prior_weight = prior_weight
        self.max_evidence = max_evidence
        self.min_typical = min_typical
        self.no_text = unavailable(self, "no prompt text in the log")

    def new_state(self) -> _IntentState:
        return _IntentState()

    def update(self, state: _IntentState, exchange: Exchange, t: float) -> None:
        request = exchange.request
        if not request:
            return
        state.seen += 1
        if not sampled(state.seen, exchange.id):
            return
        text = last_user_text(request)
        if text is None:
            return
        idx, value = featurize(text, system_text(request))
        state.sampled += 1
        if self.model.logit_of(idx, value) >= self._threshold:
            state.hits += 1
            # the family only words the explanation: past the first few, a subsample will do
            if state.hits <= FAMILY_FIRST or state.hits % FAMILY_EVERY == 0:
                state.families[self.model.family_of(idx, value)] += 1
        if state.sampled >= self.population.min_n:
            share = state.hits / state.sampled
            self.population.move(state.counted, share)
            state.counted = share

    def evaluate(self, state: _IntentState, ctx: EvalContext) -> SignalValue:
        if state.sampled == 0:
            return self.no_text
        typical = max(self.population.typical(), self.min_typical)
        key = (state.sampled, typical)
        if state.memo is not None and state.memo_key == key:
            return state.memo
        estimate = shrunk(state.hits, state.sampled, typical, self.prior_weight)
        share = state.hits / state.sampled
        state.memo_key = key
        state.memo = computed(
            self,
            round(share, 4),
            clip(math.log(estimate / typical), -1.0, self.max_evidence),
            (
                f"{share:.0%} of {state.sampled} sampled prompts try to extract "
                f"{self._what(state)} (typical accounts: {typical:.0%})"
            ).replace("%", " %"),
        )
        return state.memo

    @staticmethod
    def _what(state: _IntentState) -> str:
        ranked = sorted((n, -i, FAMILIES[i]) for i, n in enumerate(state.families) if n > 0)[::-1]
        if not ranked:
            return "reasoning, grading, safe rewrites or agent traces"
        names = [_FAMILY_WORDS[f] for _, _, f in ranked[:2]]
        return " or ".join(names)
