"""Verdicts are causal: what happens later never changes what was decided earlier."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from distillwatch.detect import Engine, LogOddsScorer, replay
from distillwatch.policy import Policy, policy_from_mapping
from distillwatch.records import Exchange, Verdict
from distillwatch.signals import create_signals
from tests.factories import exchange

EAGER = policy_from_mapping(
    {
        "name": "eager",
        "version": 1,
        "min_exchanges": 3,
        "thresholds": {"monitor": 0.05, "throttle": 0.1, "protect": 0.5, "block": 0.9},
    }
)
TEXTS = ["hi there", "Solve step by step: 3*7", "Show your work: 12/4", "write a poem"]


def run(log: Sequence[Exchange], policy: Policy = EAGER) -> dict[str, Verdict]:
    # hand-set weights: these tests are about causality, not about the shipped combiner
    result = replay(
        lambda: [sorted(log, key=lambda e: (e.ts, e.id))],
        lambda: Engine(create_signals(), policy, scorer=LogOddsScorer()),
    )
    return {v.account_id: v for v in result.verdicts}


events = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.floats(0, 5_000, allow_nan=False),
        st.sampled_from(TEXTS),
        st.sampled_from([200, 200, 200, 429]),
    ),
    min_size=1,
    max_size=120,
)


def build(
    spec: list[tuple[int, float, str, int]], offset: int = 0, shift: float = 0.0
) -> list[Exchange]:
    return [
        exchange(offset + i, account=f"acct-{a}", seconds=shift + s, text=t, status=code)
        for i, (a, s, t, code) in enumerate(spec)
    ]


@settings(max_examples=60, deadline=None)
@given(events, events)
def test_appending_later_events_never_changes_earlier_first_action(
    first: list[tuple[int, float, str, int]], later: list[tuple[int, float, str, int]]
) -> None:
    log = build(first)
    end = max(e.ts for e in log)
    extended = log + build(later, offset=len(first), shift=5_001.0)
    before, after = run(log), run(extended)
    for account, v in before.items():
        w = after[account]
        if v.first_action_ts is not None:
            assert w.first_action_ts == v.first_action_ts
            assert w.exchanges_before_action == v.exchanges_before_action
        else:
            assert w.first_action_ts is None or w.first_action_ts > end


def test_bursty_cot_account_is_acted_on_and_served_count_is_exact() -> None:
    log = [
        exchange(
            i,
            account="bot",
            seconds=i * 2.0,
            text="Solve step by step: 2+2",
            status=500 if i == 1 else 200,
        )
        for i in range(60)
    ]
    log += [
        exchange(
            100 + i,
            account="person",
            seconds=i * 97.0 + (i % 7) * 31.0,
            text="what should I cook tonight?",
        )
        for i in range(60)
    ]
    verdicts = run(log)
    bot, person = verdicts["bot"], verdicts["person"]
    assert bot.first_action_ts is not None and bot.exchanges_before_action is not None
    acted = [e for e in log if e.account_id == "bot" and e.ts <= bot.first_action_ts]
    # Served = status 2xx: the one 500 is not counted; the triggering exchange is.
    assert bot.exchanges_before_action == sum(1 for e in acted if e.served)
    assert bot.exchanges_before_action == len(acted) - 1
    assert person.first_action_ts is None and person.action.rank < bot.action.rank
    assert any("step-by-step" in r for r in bot.reasons)


def test_every_account_gets_a_verdict_with_provenance() -> None:
    log = [exchange(i, account=f"a{i % 5}", text=None) for i in range(50)]
    verdicts = run(log)
    assert set(verdicts) == {f"a{i}" for i in range(5)}
    for v in verdicts.values():
        assert v.evidence is not None
        assert v.evidence.policy.hash == EAGER.hash
        # Metadata-only log: the verdict says which signals could not be computed.
        assert "content.reasoning_share" in v.evidence.unavailable
