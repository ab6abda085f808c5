"""Prompt-template signals: prompts resent verbatim, and scaffolds reused around new payloads.

Programs prompt differently from people. An evaluation harness or a scheduled job resends a
fixed set of prompts; an app backend wraps each of its users' texts in one template; a
distillation pipeline sweeps a taxonomy of tasks through a *rotation* of templates and never
asks the same thing twice (it wants new answers). People write free text and repeat little.

* ``templates.repetition`` — share of an account's prompts that repeat, verbatim, one it
  sent and was answered before. Rerunning a fixed set is what evaluators and cron jobs do
  and what a harvester never does (a repeat buys nothing new), so the evidence is only ever
  *negative*: it protects heavy legitimate users. Faking it costs an attacker the repeats.
* ``templates.scaffold_rotation`` — share of sampled prompts that put a new payload into a
  scaffold the account used before, counted only when several scaffolds are in rotation.
  One template around every user text is an app backend or a cron job (the hard negative):
  it earns nothing. Evidence stays modest; it is meant to add up with the content signals.

**Scaffolds.** A scaffold is what stays fixed around the payload: instructions at the
start or the end of a prompt. Each prompt's edges (``SCAFFOLD_EDGE`` characters at each end;
the middle is payload) are cut into lines and sentences, lower-cased with digits dropped,
and hashed; a sentence the account sent before is scaffold, a new one is payload. Why not
MinHash or SimHash (e.g. ``rensa``, ``datasketch``): a sketch of an edge's shingles mixes
the instruction with the payload next to it (a short "Translate into French:" before a
long text barely moves the Jaccard estimate), and grouping prompts by sketch similarity
needs a per-account index of signatures to compare against. Exact sentence hashes isolate
the instruction, survive lead-ins and sign-offs added around a template, need no
dependency, and cost a few microseconds per sampled prompt (``sentence_keys``).

**Cost and memory.** Reading the prompt text is shared between the two signals (a one-entry
cache keyed by the exchange object). Repetition hashes every prompt once (CRC-32 of its
text, head and tail only when long) and keeps at most ``REPEAT_CAPACITY`` hashes per account
by *content* sampling: when the set is full, only hashes whose low bits are zero at the next
level are kept, so every occurrence of a prompt is either always or never looked at and
repeats among the sampled prompts are counted exactly. Scaffolds are read on a sample of
exchanges decided by a hash of the exchange id (the gateway assigns it, so a client cannot
choose which prompts are read); an account keeps a direct-mapped table of
``SENTENCE_SLOTS`` sentence hashes and a space-saving top-``TOP_SCAFFOLDS`` of scaffold ids.
Nothing uses Python's salted ``hash()``: results are the same in every process.
"""

from __future__ import annotations

import math
import zlib
from array import array
from dataclasses import dataclass, field
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import (
    EvalContext,
    PopulationTail,
    computed,
    percent,
    ramp,
    shrunk,
    unavailable,
)
from distillwatch.signals.registry import register
from distillwatch.signals.text import last_user_text

KEY_EDGE = 512
"""A prompt longer than twice this is keyed by its head, tail and length (repetition)."""
REPEAT_CAPACITY = 64
SCAFFOLD_EDGE = 200
"""Scaffold sentences are looked for this many characters from either end of a prompt."""
MIN_SENTENCE = 12
"""Shorter sentences (in UTF-8 bytes) ("Thanks!", "Hi there") say nothing about a template."""
SENTENCE_SLOTS = 128
TOP_SCAFFOLDS = 12
SAMPLE_FIRST = 8
SAMPLE_EVERY = 4
SAMPLE_SLOW_AFTER = 256
SAMPLE_EVERY_SLOW = 16

_DIGITS = b"0123456789"  # numbers are payload: dropped from scaffold sentences
_last: tuple[Exchange | None, str | None] = (None, None)


def prompt_text(exchange: Exchange) -> str | None:
    """The newest user turn of ``exchange`` (``text.last_user_text``), read once per exchange.

    Both signals of this module read the same exchange one after the other; the last
    answer is kept as one tuple, so concurrent callers never see a torn pair.
    """
    global _last
    seen, text = _last
    if seen is exchange:
        return text
    text = last_user_text(exchange.request)
    _last = (exchange, text)
    return text


def prompt_key(text: str) -> int:
    """A deterministic 32-bit key of a prompt's exact text (head, tail and length if long).

    >>> prompt_key("What is 2+2?") == prompt_key("What is 2+2?") != prompt_key("What is 2+3?")
    True
    """
    n = len(text)
    edge = text if n <= 2 * KEY_EDGE else text[:KEY_EDGE] + text[-KEY_EDGE:]
    return zlib.crc32(edge.encode("utf-8", "surrogatepass"), n)


def sentence_keys(text: str) -> list[tuple[int, int]]:
    """Hashes and lengths of the sentences at a prompt's edges, lower-cased without digits.

    Lines and ``". "``-separated sentences of at least ``MIN_SENTENCE`` bytes (UTF-8) count;
    only ``SCAFFOLD_EDGE`` characters at each end are read. Hashes are never 0.

    >>> a = sentence_keys("Solve step by step, please.\\n\\nWhat is 12 + 30?")
    >>> b = sentence_keys("Solve step by step, please.\\n\\nWhat is 7 + 95?")
    >>> c = sentence_keys("Solve step by step, please.\\n\\nName a prime above 50.")
    >>> [n for _, n in a], a[0] == c[0], a == b, a[1] == c[1]
    ([27, 12], True, True, False)
    """
    if len(text) > 2 * SCAFFOLD_EDGE:
        text = text[:SCAFFOLD_EDGE] + "\n" + text[-SCAFFOLD_EDGE:]
    keys = []
    raw = text.lower().encode("utf-8", "surrogatepass").translate(None, _DIGITS)
    for line in raw.split(b"\n"):
        for part in line.split(b". "):
            part = part.strip()
            n = len(part)
            if n >= MIN_SENTENCE:
                keys.append((zlib.crc32(part) | 1, n))
    return keys


def sampled(seen: int, exchange_id: str) -> bool:
    """Whether an account's ``seen``-th prompt (1-based) is read for scaffolds.

    >>> all(sampled(i, "x") for i in range(1, SAMPLE_FIRST + 1))
    True
    >>> sum(sampled(SAMPLE_FIRST + 1, f"ex_{i}") for i in range(8000)) // 100
    20
    """
    if seen <= SAMPLE_FIRST:
        return True
    period = SAMPLE_EVERY if seen <= SAMPLE_SLOW_AFTER else SAMPLE_EVERY_SLOW
    return zlib.crc32(exchange_id.encode("utf-8", "surrogatepass")) % period == 0


# --- repetition --------------------------------------------------------------------------


@dataclass(slots=True)
class _RepeatState:
    level: int = 0  # content sampling: keys whose low ``level`` bits are zero are looked at
    keys: set[int] = field(default_factory=set)  # served prompts at the current level
    looked: int = 0  # sampled prompts (unweighted)
    tested: float = 0.0  # prompts they stand for (each weighs 2**level)
    repeats: float = 0.0
    bin: int = -1
    memo_key: tuple[int, int, int] | None = None
    memo: SignalValue | None = None
    memo_n: int = -1  # ``looked`` and the population version when ``memo`` was checked
    memo_v: int = -1


@register
class Repetition:
    """Share of an account's prompts that repeat verbatim one it sent and was answered before.

    Evaluation harnesses and scheduled jobs rerun fixed prompt sets; a distillation pipeline
    wants a new answer for every request and does not pay twice for the same one. Repeats of
    prompts that were refused (retries) do not count. The share is shrunk toward the
    population's median (a prior worth ``prior_weight`` prompts against at most
    ``max_weight`` sampled ones); evidence is 0 up to
    ``floor`` and falls linearly to ``-max_negative`` at ``full`` — never positive, since
    people do not repeat themselves either. Needs ``min_prompts`` sampled prompts.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = Repetition(); st = sig.new_state()
    >>> for i in range(60):  # a suite of 20 prompts run three times
    ...     ask = {"messages": [{"role": "user", "content": f"Problem {i % 20}: add 2 and 3."}]}
    ...     e = Exchange(id=f"x{i}", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...                  ip="192.0.2.1", model="m", request=ask)
    ...     sig.update(st, e, float(i))
    >>> v = sig.evaluate(st, EvalContext(now=60.0, account=None, tier="paid", exchanges=60))
    >>> v.evidence, v.explanation
    (-1.0, '67 % of prompts repeat one already answered, verbatim; typical accounts: 0 %')
    """

    id: ClassVar[str] = "templates.repetition"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "templates"
    needs_text: ClassVar[bool] = True
    summary: ClassVar[str] = "share of prompts that repeat verbatim one already answered"

    def __init__(
        self,
        min_prompts: int = 10,
        prior_weight: float = 10.0,
        max_weight: int = 64,
        floor: float = 0.1,
        full: float = 0.5,
        max_negative: float = 1.0,
    ) -> None:
        self.population = PopulationTail(prior=0.0, prior_tail=0.05)
        self.min_prompts = min_prompts
        self.prior_weight = prior_weight
        self.max_weight = max_weight
        self.floor = floor
        self.full = full
        self.max_negative = max_negative
        self.no_text = unavailable(self, "no prompt text in the log")
        self.too_few = unavailable(self, f"fewer than {min_prompts} prompts so far")

    def new_state(self) -> _RepeatState:
        return _RepeatState()

    def update(self, state: _RepeatState, exchange: Exchange, t: float) -> None:
        text = prompt_text(exchange)
        if text is None:
            return
        key = prompt_key(text)
        if key & ((1 << state.level) - 1):
            return  # not in the content sample
        weight = float(1 << state.level)
        state.looked += 1
        state.tested += weight
        keys = state.keys
        if key in keys:
            state.repeats += weight
        elif exchange.served:
            keys.add(key)
            if len(keys) > REPEAT_CAPACITY:  # halve the sample: O(1) memory per account
                state.level += 1
                mask = (1 << state.level) - 1
                state.keys = {k for k in keys if not k & mask}
        if state.looked >= self.min_prompts:
            state.bin = self.population.place(state.bin, state.repeats / state.tested)

    def evaluate(self, state: _RepeatState, ctx: EvalContext) -> SignalValue:
        looked = state.looked
        if looked < self.min_prompts:
            return self.too_few if looked else self.no_text
        pop = self.population
        memo = state.memo
        if memo is not None and state.memo_n == looked and state.memo_v == pop.version:
            return memo  # nothing changed since the last call
        # an integer key next: most changes end here (the count matters only with repeats)
        pct = int(200 * state.repeats / state.tested + 1) // 2
        m = (looked if looked < self.max_weight else self.max_weight) if pct else 0
        key = (pct, m, pop.version)
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            typical = pop.typical()
            estimate = shrunk(pct / 100 * m, m, typical, self.prior_weight)
            evidence = -self.max_negative * ramp(estimate, self.floor, self.full)
            state.memo_key = key
            state.memo = computed(
                self,
                pct / 100,
                round(evidence, 2) + 0.0,
                f"{pct} % of prompts repeat one already answered, verbatim; "
                f"typical accounts: {round(typical * 100)} %",
            )
        state.memo_n, state.memo_v = looked, pop.version
        return state.memo


# --- scaffold rotation -------------------------------------------------------------------


@dataclass(slots=True)
class _ScaffoldState:
    seen: int = 0  # prompts with text
    n: int = 0  # sampled prompts with at least one sentence
    templated: int = 0  # ... that put a new payload in a scaffold used before
    recycled: int = 0  # ... mostly made of sentences sent before (a question asked again)
    slots: array[int] = field(default_factory=lambda: array("I", bytes(4 * SENTENCE_SLOTS)))
    top: dict[int, int] = field(default_factory=dict)  # scaffold id -> count (space-saving)
    spread_key: int = 0  # 4 x the rotation of ``top`` (to the quarter: a memo key)
    bin: int = -1
    memo_key: tuple[int, int, int, int, int] | None = None
    memo: SignalValue | None = None
    memo_n: int = -1  # ``n`` and the population version when ``memo`` was checked
    memo_v: int = -1


def rotation(counts: list[int]) -> float:
    """Effective number of scaffolds in use: the perplexity of their counts.

    >>> rotation([30]), rotation([5, 5, 5, 5]), round(rotation([20, 1, 1]), 2)
    (1.0, 4.0, 1.44)
    """
    total = sum(counts)
    if total == 0:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts if c)
    return math.exp(h)


@register
class ScaffoldRotation:
    """Share of sampled prompts that put a new payload into one of several reused scaffolds.

    A sampled prompt is *templated* when one of its edge sentences was sent by the account
    before and at least as much of its text is new (a new payload); it *re-asks* when more
    of it was sent before (a question asked again in other words; verbatim repeats are
    ``templates.repetition``'s business). The templated share, to the per cent, is shrunk
    toward the population median (a prior worth ``prior_weight`` prompts against at most
    ``max_weight`` sampled ones); above the median the evidence is
    ``ln(0.5 / P(accounts at least as templated))`` clipped to ``[0, max_evidence]``, then
    scaled by two ramps: the scaffolds in rotation (the perplexity of a space-saving top-k
    of scaffold ids; 0 up to ``rotation[0]``, full from ``rotation[1]``: one template
    around every user text is an app backend or a cron job) and payload novelty
    (templated / (templated + re-asked + 1); 0 up to ``novelty[0]``, full from
    ``novelty[1]``: a class or a lab re-asks its items, a sweep never does). Needs
    ``min_prompts`` sampled prompts.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = ScaffoldRotation(); st = sig.new_state()
    >>> wraps = ["Solve this step by step.", "Grade the answer from 1 to 10.",
    ...          "Rewrite it to be safe and clean.", "Translate it into French, please."]
    >>> topics = ["primes", "poems", "tax", "cells", "loans", "orbits", "viruses", "chess", "jazz"]
    >>> sides = ["history", "future", "cost", "risk", "ethics"]
    >>> for i in range(40):
    ...     ask = f"{wraps[i % 4]}\\n\\nWhat do you know of the {sides[i // 9]} of {topics[i % 9]} today?"
    ...     e = Exchange(id=f"x{i}", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...                  ip="192.0.2.1", model="m",
    ...                  request={"messages": [{"role": "user", "content": ask}]})
    ...     sig.update(st, e, float(i))
    >>> v = sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40))
    >>> v.evidence, v.explanation
    (0.47, '69 % of sampled prompts wrap a new payload in ~4 reused scaffolds, 0 % re-ask an earlier one; typical accounts: 5 %')
    """  # noqa: E501

    id: ClassVar[str] = "templates.scaffold_rotation"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "templates"
    needs_text: ClassVar[bool] = True
    summary: ClassVar[str] = (
        "share of sampled prompts that wrap a new payload in one of several reused scaffolds"
    )

    def __init__(
        self,
        min_prompts: int = 10,
        prior_weight: float = 5.0,
        max_weight: int = 64,
        rotation: tuple[float, float] = (2.0, 5.0),
        novelty: tuple[float, float] = (0.7, 0.9),
        max_evidence: float = 0.8,
    ) -> None:
        self.population = PopulationTail(prior=0.05, prior_tail=0.15)
        self.min_prompts = min_prompts
        self.prior_weight = prior_weight
        self.max_weight = max_weight
        self.rotation_from, self.rotation_full = rotation
        self.novelty_from, self.novelty_full = novelty
        self.max_evidence = max_evidence
        self.no_text = unavailable(self, "no prompt text in the log")
        self.too_few = unavailable(self, f"fewer than {min_prompts} sampled prompts so far")

    def new_state(self) -> _ScaffoldState:
        return _ScaffoldState()

    def update(self, state: _ScaffoldState, exchange: Exchange, t: float) -> None:
        if not exchange.request:
            return
        state.seen += 1
        if not sampled(state.seen, exchange.id):
            return
        text = prompt_text(exchange)
        if text is None:
            state.seen -= 1  # a body without prompt text is not a prompt
            return
        keys = sentence_keys(text)
        if not keys:
            return
        state.n += 1
        slots = state.slots
        scaffold = 0
        new = old = 0  # characters in new and in reused sentences
        for k, length in keys:
            i = k % SENTENCE_SLOTS
            if slots[i] == k:
                old += length
                if not scaffold:
                    scaffold = k
            else:
                new += length
                slots[i] = k  # direct-mapped: a new sentence evicts whatever was there
        # a new payload: at least as much new text as reused (not a re-asked question)
        if scaffold:
            if new >= old:
                state.templated += 1
                _space_saving(state.top, scaffold)
                state.spread_key = round(4 * rotation(list(state.top.values())))
            else:
                state.recycled += 1
        if state.n >= self.min_prompts:
            state.bin = self.population.place(state.bin, state.templated / state.n)

    def evaluate(self, state: _ScaffoldState, ctx: EvalContext) -> SignalValue:
        n = state.n
        if n < self.min_prompts:
            return self.too_few if state.seen else self.no_text
        pop = self.population
        memo = state.memo
        if memo is not None and state.memo_n == n and state.memo_v == pop.version:
            return memo  # nothing changed since the last call
        # an integer key next: it changes only on sampled prompts, and rarely on big accounts
        pct = percent(state.templated, n)
        again = percent(state.recycled, n)
        m = n if n < self.max_weight else self.max_weight
        key = (pct, again, state.spread_key, m, pop.version)
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            typical = pop.view()[0]
            estimate = shrunk(pct / 100 * m, m, typical, self.prior_weight)
            spread = state.spread_key / 4
            novelty = state.templated / (state.templated + state.recycled + 1)
            ev = (
                pop.surprise(estimate, typical, self.max_evidence)
                * ramp(spread, self.rotation_from, self.rotation_full)
                * ramp(novelty, self.novelty_from, self.novelty_full)
            )
            scaffolds = "one reused scaffold" if spread < 1.5 else f"~{spread:.0f} reused scaffolds"
            state.memo_key = key
            state.memo = computed(
                self,
                pct / 100,
                round(ev, 2) + 0.0,
                f"{pct} % of sampled prompts wrap a new payload in {scaffolds}, {again} % "
                f"re-ask an earlier one; typical accounts: {round(typical * 100)} %",
            )
        state.memo_n, state.memo_v = n, pop.version
        return state.memo


def _space_saving(top: dict[int, int], key: int) -> None:
    """Count ``key`` in a space-saving top-``TOP_SCAFFOLDS`` (Metwally et al., 2005)."""
    count = top.get(key)
    if count is not None:
        top[key] = count + 1
    elif len(top) < TOP_SCAFFOLDS:
        top[key] = 1
    else:  # evict the least counted; the newcomer inherits its count (an upper bound)
        victim = min(top, key=top.__getitem__)
        top[key] = top.pop(victim) + 1
