"""``EvalContext.explain=False`` (the engine's re-scores) changes nothing but explanations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from distillwatch.records import Account
from distillwatch.signals import REGISTRY, create_signals
from distillwatch.signals.base import EvalContext
from distillwatch.testing.checks import sample_exchanges

ACCOUNT = Account(account_id="contract", created_at=datetime(2026, 2, 27, tzinfo=UTC))


@pytest.mark.parametrize("signal_id", [s.id for s in create_signals()])
@pytest.mark.parametrize("with_text", [True, False])
def test_unexplained_values_differ_only_in_the_explanation(signal_id: str, with_text: bool) -> None:
    # two instances fed the same stream: one explained every time, one only every 7th call
    explained, quiet = REGISTRY[signal_id](), REGISTRY[signal_id]()
    for sig in (explained, quiet):
        bind = getattr(sig, "bind", None)
        if callable(bind):
            bind({ACCOUNT.account_id: ACCOUNT})
    a, b = explained.new_state(), quiet.new_state()
    for i, e in enumerate(sample_exchanges(300, with_text=with_text), start=1):
        t = e.ts.timestamp()
        explained.update(a, e, t)
        quiet.update(b, e, t)
        ctx = EvalContext(now=t, account=ACCOUNT, tier="free", exchanges=i)
        full = explained.evaluate(a, ctx)
        part = quiet.evaluate(b, EvalContext(t, ACCOUNT, "free", i, explain=i % 7 == 0))
        assert (part.signal_id, part.version, part.available) == (
            full.signal_id,
            full.version,
            full.available,
        )
        assert part.evidence == full.evidence and part.value == full.value
        assert part.explanation in (full.explanation, "")
        if i % 7 == 0:
            assert part.explanation == full.explanation


def test_the_engine_scores_the_same_with_and_without_explanations() -> None:
    from distillwatch.detect import Engine
    from distillwatch.policy import load_policy

    engine = Engine(create_signals(), load_policy(), {ACCOUNT.account_id: ACCOUNT})
    for e in sample_exchanges(120):
        engine.observe(e)
        st = engine.states[e.account_id]
        assert engine.rescore(st, e.ts.timestamp()) == engine.score(st, e.ts.timestamp()).score
