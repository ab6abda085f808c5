"""Received intel plugs into the engine through its ``Linker`` protocol, causally."""

from __future__ import annotations

from distillwatch.detect import Engine, LogOddsScorer
from distillwatch.detect.engine import Linker
from distillwatch.policy import load_policy
from distillwatch.share.match import SIGNAL_ID, IntelIndex, IntelMatcher
from distillwatch.share.trust import TrustPolicy
from tests.share.test_export import export
from tests.share.world import GROUP, NOW, SECRET, provider_a, provider_b


def test_intel_evidence_reaches_the_score_and_the_verdict() -> None:
    index = IntelIndex(GROUP, SECRET)
    index.add_bundle("member-a", export(provider_a()), now=NOW)
    side = provider_b()
    matcher = IntelMatcher(index, TrustPolicy(GROUP, {}, {"member-a": 0.9}), side.accounts)
    linker: Linker = matcher  # the protocol is satisfied (mypy checks this line)
    with_intel = Engine([], load_policy(), side.accounts, LogOddsScorer(), linker=linker)
    without = Engine([], load_policy(), side.accounts, LogOddsScorer())
    for e in sorted(side.exchanges, key=lambda e: (e.ts, e.id)):
        with_intel.observe(e)
        without.observe(e)
    got = {v.account_id: v for v in with_intel.verdicts()}
    base = {v.account_id: v for v in without.verdicts()}
    assert got["b-attacker-card"].score > base["b-attacker-card"].score
    assert got["b-legit"].score == base["b-legit"].score
    ev = got["b-attacker-card"].evidence
    assert ev is not None and SIGNAL_ID in ev.signals
    assert any("member-a" in r for r in got["b-attacker-card"].reasons)
    # one member alone never makes the engine act
    assert not got["b-attacker-card"].action.enforces
