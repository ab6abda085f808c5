"""Behaviour rules: derived from a campaign's signal values, exported, matched elsewhere."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_string

from distillwatch.records import Action, Evidence, PolicyRef, Verdict
from distillwatch.share.collect import Collector
from distillwatch.share.errors import IntelError
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.pattern import parse
from distillwatch.share.rules import BehaviourRule
from distillwatch.share.trust import TrustPolicy
from distillwatch.signals import create_signals
from tests.share.test_export import assert_private
from tests.share.world import GROUP, NOW, SECRET, provider_a

VERSIONS = {s.id: s.version for s in create_signals()}
REF = PolicyRef(name="default", version=1, hash="x", rule="r")


def verdict(account: str, burst: float, churn: float, n: int = 50) -> Verdict:
    signals: dict[str, float | None] = {"signup.burst": burst, "network.address_churn": churn}
    evidence = Evidence(exchanges=n, signals=signals, unavailable=[], policy=REF)
    score = 0.9 if burst > 3 else 0.01
    return Verdict(account_id=account, score=score, action=Action.ALLOW, evidence=evidence)


def verdicts() -> list[Verdict]:
    camp = [verdict(f"canary-acct-{i}", 6.0 + i, 0.9) for i in range(4)]
    rest = [verdict(f"legit-{i}", i % 3, 0.05 + i / 1000) for i in range(60)]
    return camp + rest


def bundle() -> dict[str, Any]:
    side = provider_a()
    col = Collector({c.campaign_id: c.accounts for c in side.campaigns}, side.accounts)
    col.run(lambda: [side.exchanges])
    config = ExportConfig(member="member-a", group=GROUP, group_secret=SECRET)
    b, stats = build_bundle(side.campaigns, col, config, now=NOW, verdicts=verdicts())
    assert stats.indicators.get("rule") == 1
    out: dict[str, Any] = json.loads(b.serialize())
    return out


def test_rule_is_exported_valid_and_private() -> None:
    b = bundle()
    text = json.dumps(b)
    assert validate_string(text, ValidationOptions(version="2.1")).errors == []
    assert_private(text)
    (pattern,) = [o["pattern"] for o in b["objects"] if "behaviour-rule" in o.get("pattern", "")]
    rule = parse(pattern)
    assert isinstance(rule, BehaviourRule)
    assert {c.signal for c in rule.conditions} == {"signup.burst", "network.address_churn"}
    assert parse(rule.render()) == rule


def test_rule_matches_at_the_receiver_only_at_the_same_signal_versions() -> None:
    index = IntelIndex(GROUP, SECRET)
    index.add_bundle("member-a", bundle(), now=NOW)
    m = IntelMatcher(index, TrustPolicy(GROUP, {}, {"member-a": 0.9}))
    t = NOW.timestamp()
    m.observe_signals(
        "b-new", {"signup.burst": 9.0, "network.address_churn": 0.95}, VERSIONS, 40, t
    )
    m.observe_signals(
        "b-legit", {"signup.burst": 1.0, "network.address_churn": 0.95}, VERSIONS, 40, t
    )
    m.observe_signals(
        "b-young", {"signup.burst": 9.0, "network.address_churn": 0.95}, VERSIONS, 3, t
    )
    other = {**VERSIONS, "signup.burst": VERSIONS["signup.burst"] + 1}
    m.observe_signals("b-newer", {"signup.burst": 9.0, "network.address_churn": 0.95}, other, 40, t)
    assert [r.kind for r in m.matched("b-new", t)] == ["rule"]
    assert not m.matched("b-legit", t) and not m.matched("b-young", t)
    assert not m.matched("b-newer", t)


@pytest.mark.parametrize(
    "pattern",
    [
        "behaviour-rule v=1 group=g min_exchanges=5 all=a.b@1>=2",
        "behaviour-rule v=1 group=g min_exchanges=x all=a.b@1>=2,c.d@1<=3",
        "behaviour-rule v=1 group=g min_exchanges=5 all=a.b@1=2,c.d@1<=3",
        "behaviour-rule v=1 group=g all=a.b@1>=2,c.d@1<=3",
    ],
)
def test_bad_rules_are_rejected(pattern: str) -> None:
    with pytest.raises(IntelError):
        parse(pattern)
