"""templates.repetition and templates.scaffold_rotation on crafted streams."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, Signal
from distillwatch.signals.templates import (
    REPEAT_CAPACITY,
    SENTENCE_SLOTS,
    TOP_SCAFFOLDS,
    Repetition,
    ScaffoldRotation,
    prompt_key,
    sentence_keys,
)
from tests.factories import exchange

WORDS = ["river", "market", "theory", "engine", "garden", "protein", "ledger", "harbor", "violin",
         "glacier", "orbit", "pigment", "tariff", "sonnet", "enzyme", "bridge", "monsoon",
         "algebra", "pottery", "satellite", "vaccine", "cathedral", "falcon", "mortgage",
         "lantern", "volcano", "chess", "opera", "desert", "reactor", "comet",
         "saffron"]  # fmt: skip
WRAPS = (
    "Solve the following problem step by step and show all of your work.\n\n{q}",
    "{q}\n\nExplain your reasoning in detail before giving the final answer.",
    "You are a reward model. Grade an ideal answer to the task below from one to ten.\n\n{q}",
    "Rewrite the following so that it avoids sensitive content, then answer it.\n\n{q}",
    "Classify the intent of this message and reply with one word only.\n\n{q}",
    "{q}\nWalk me through your thought process, then state the result clearly.",
)


def payloads(seed: int, n: int) -> list[str]:
    """``n`` distinct question-like payloads (no digits: they are dropped from scaffolds)."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        a, b, c, d = rng.sample(WORDS, 4)
        out.add(f"How does the {a} of a {b} change the {c} near the {d}, and why does it matter?")
    return sorted(out, key=lambda _: rng.random())


def account(name: str, texts: Iterable[str], start: int = 0, **fields: Any) -> list[Exchange]:
    return [exchange(start + i, account=name, text=t, **fields) for i, t in enumerate(texts)]


def chat_population(accounts: int = 30, each: int = 12) -> list[Exchange]:
    """People: free text, a new question every time."""
    out = []
    for a in range(accounts):
        out += account(f"chat-{a}", payloads(1000 + a, each), start=a * each)
    return out


def run(sig: Signal, stream: Iterable[Exchange]) -> dict[str, SignalValue]:
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


def harvester(n: int = 120) -> list[Exchange]:
    """A sweep: every request a new problem, wrapped in one of six templates in turn."""
    texts = [WRAPS[i % len(WRAPS)].format(q=q) for i, q in enumerate(payloads(7, n))]
    return account("harvester", texts, start=50_000)


def evaluator(suite: int = 30, runs: int = 4) -> list[Exchange]:
    """A fixed suite in one chain-of-thought template, rerun verbatim."""
    problems = payloads(8, suite)
    texts = [WRAPS[0].format(q=q) for _ in range(runs) for q in problems]
    return account("eval", texts, start=60_000)


def backend(n: int = 120) -> list[Exchange]:
    """An app: one template around each of its users' (new) texts."""
    return account("app", [WRAPS[4].format(q=q) for q in payloads(9, n)], start=70_000)


# --- repetition ------------------------------------------------------------------------


def test_evaluator_rerunning_a_fixed_set_gets_negative_evidence() -> None:
    v = run(Repetition(), chat_population() + evaluator())["eval"]
    assert v.available and v.value == 0.75  # runs 2-4 of 4 repeat run 1
    assert v.evidence == -1.0
    assert v.explanation.startswith("75 % of prompts repeat one already answered")


def test_harvester_and_people_never_repeat_and_get_no_evidence() -> None:
    values = run(Repetition(), chat_population() + harvester())
    assert values["harvester"].value == 0.0 and values["harvester"].evidence == 0.0
    assert values["chat-0"].value == 0.0 and values["chat-0"].evidence == 0.0
    assert "typical accounts: 0 %" in values["harvester"].explanation


def test_retries_of_refused_requests_are_not_repeats() -> None:
    texts = payloads(3, 20)
    refused = account("retry", texts, status=429)
    served = account("retry", texts, start=100)
    v = run(Repetition(), refused + served)["retry"]
    assert v.value == 0.0 and v.evidence == 0.0


def test_repetition_memory_is_bounded_and_repeats_stay_exact() -> None:
    sig = Repetition()
    st = sig.new_state()
    texts = payloads(4, 2_000)
    for i, e in enumerate(account("big", texts + texts)):
        sig.update(st, e, float(i))
        assert len(st.keys) <= REPEAT_CAPACITY
    assert st.level >= 5  # 2,000 distinct prompts sampled down to at most 64 hashes
    v = sig.evaluate(st, EvalContext(now=0.0, account=None, tier="paid", exchanges=4_000))
    # the second pass repeats the first: half the prompts, estimated from the sample
    assert v.value is not None and 0.35 < v.value < 0.65


def test_repetition_unavailable_without_text_or_with_too_few() -> None:
    sig = Repetition()
    v = run(sig, [exchange(i, text=None) for i in range(20)])["acct-1"]
    assert not v.available and "no prompt text" in v.explanation
    v = run(sig, account("new", payloads(5, 4)))["new"]
    assert not v.available and "fewer than 10 prompts" in v.explanation


# --- scaffold rotation -----------------------------------------------------------------


def test_harvester_with_a_rotation_of_templates_and_new_payloads_scores() -> None:
    v = run(ScaffoldRotation(), chat_population() + harvester())["harvester"]
    assert v.available and v.value is not None and v.value > 0.6
    assert v.evidence >= 0.5
    assert "~6 reused scaffolds, 0 % re-ask" in v.explanation


def test_app_backend_with_one_template_gets_nothing() -> None:
    # the hard negative: as templated as a harvester, but one scaffold around users' text
    v = run(ScaffoldRotation(), chat_population() + backend())["app"]
    assert v.value is not None and v.value > 0.6
    assert v.evidence == 0.0
    assert "in one reused scaffold" in v.explanation


def test_evaluator_rerunning_its_suite_gets_nothing() -> None:
    v = run(ScaffoldRotation(), chat_population() + evaluator())["eval"]
    assert v.evidence == 0.0


def test_people_asking_again_in_other_words_get_nothing() -> None:
    # a few questions, each re-asked with a different opening and closing, as a class does
    leads = ["Hi! Can you help me with this one?", "I am stuck on my homework tonight."]
    ends = ["Thanks a lot for your help!", "Please explain it slowly to me."]
    qs = payloads(11, 6)
    texts = [f"{leads[i % 2]}\n{qs[i % 6]}\n{ends[(i // 2) % 2]}" for i in range(60)]
    v = run(ScaffoldRotation(), chat_population() + account("student", texts, start=80_000))
    assert v["student"].evidence == 0.0
    assert "re-ask an earlier one" in v["student"].explanation


def test_free_text_is_not_templated() -> None:
    v = run(ScaffoldRotation(), chat_population(30, 40))["chat-0"]
    assert v.value == 0.0 and v.evidence == 0.0


def test_scaffold_state_is_bounded() -> None:
    sig = ScaffoldRotation()
    st = sig.new_state()
    texts = [f"{w}\n\n{q}" for w, q in zip(WRAPS * 500, payloads(12, 3_000), strict=False)]
    texts += [
        f"Template number {w} asks you this.\n\n{q}"
        for w, q in zip(WORDS * 40, texts, strict=False)
    ]
    for i, e in enumerate(account("big", texts)):
        sig.update(st, e, float(i))
    assert len(st.slots) == SENTENCE_SLOTS and len(st.top) <= TOP_SCAFFOLDS
    assert st.n < len(texts) // 4  # sampled


def test_unavailable_without_text() -> None:
    v = run(ScaffoldRotation(), [exchange(i, text=None) for i in range(30)])["acct-1"]
    assert not v.available and "no prompt text" in v.explanation


# --- causality and determinism ---------------------------------------------------------


def test_values_depend_only_on_the_past() -> None:
    stream = chat_population(10, 12) + harvester(60) + evaluator(10, 3)
    stream.sort(key=lambda e: (e.ts, e.id))
    for cls in (Repetition, ScaffoldRotation):
        full: list[SignalValue] = []
        sig = cls()
        states: dict[str, Any] = {}
        for n, e in enumerate(stream, start=1):
            st = states.setdefault(e.account_id, sig.new_state())
            sig.update(st, e, e.ts.timestamp())
            ctx = EvalContext(now=e.ts.timestamp(), account=None, tier="paid", exchanges=n)
            full.append(sig.evaluate(st, ctx))
        for k in (40, 150, len(stream) - 1):
            prefix = run(cls(), stream[:k])
            assert prefix[stream[k - 1].account_id] == full[k - 1]


_CHILD = """
import json, sys
from distillwatch.signals.templates import prompt_key, sentence_keys
texts = json.loads(sys.stdin.read())
print(json.dumps([[prompt_key(t), sentence_keys(t)] for t in texts]))
"""


def test_hashes_are_the_same_in_every_process() -> None:
    texts = [WRAPS[i % 6].format(q=q) for i, q in enumerate(payloads(13, 12))]
    here = [[prompt_key(t), [list(k) for k in sentence_keys(t)]] for t in texts]
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert json.loads(out.stdout) == here
