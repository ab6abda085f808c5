"""Behaviour rules: derived from a campaign's signal values, exported, matched elsewhere."""

from __future__ import annotations

import json
import logging
import random
from types import SimpleNamespace
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_string

from distillwatch.records import Action, Evidence, PolicyRef, Verdict
from distillwatch.share import index as index_module
from distillwatch.share.collect import Collector
from distillwatch.share.errors import IntelError
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.pattern import parse
from distillwatch.share.rules import BehaviourRule, Condition, RuleTable
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


def _rule_bundle(*patterns: str) -> dict[str, Any]:
    """``bundle()`` with its rule indicator copied once per pattern (new ids)."""
    b = bundle()
    (rule,) = [o for o in b["objects"] if "behaviour-rule" in o.get("pattern", "")]
    for i, pattern in enumerate(patterns):
        b["objects"].append({**rule, "id": f"{rule['id'][:-4]}{i:04d}", "pattern": pattern})
    return b


def test_rules_we_cannot_evaluate_are_skipped_at_import_with_a_logged_reason(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "_SKIPS_LOGGED", set())  # (logged once per process)
    burst, churn = VERSIONS["signup.burst"], VERSIONS["network.address_churn"]
    head = f"behaviour-rule v=1 group={GROUP} min_exchanges=5 all="
    patterns = {
        f"signup.burst@{burst + 1}": "newer than ours",
        f"signup.burst@{burst - 1}": "older than ours",
        "signup.teleport@1": "a signal we do not run",
    }
    b = _rule_bundle(*(f"{head}{c}>=1,network.address_churn@{churn}>=0.5" for c in patterns))
    index = IntelIndex(GROUP, SECRET)
    with caplog.at_level(logging.WARNING, logger="distillwatch.share"):
        index.add_bundle("member-a", b, now=NOW)
    assert index.stats.skipped_rules == 3
    assert len(index.rules) == 1  # the exported rule, at our versions
    assert sorted(index.skipped.values()) == sorted(
        [
            f"reads signup.burst@{burst + 1}, newer than ours (v{burst})",
            f"reads signup.burst@{burst - 1}, older than ours (v{burst})",
            "reads signup.teleport, a signal we do not run",
        ]
    )
    logged = " ".join(r.getMessage() for r in caplog.records)
    for iid, why in index.skipped.items():
        assert f"intel rule {iid} from member-a skipped: {why}" in logged
    assert not set(index.skipped) & set(index.refs)
    # a receiver running a newer signal skips the exported rule instead, never crashing
    newer = IntelIndex(GROUP, SECRET, signals={**VERSIONS, "signup.burst": burst + 1})
    newer.add_bundle("member-a", b, now=NOW)
    assert newer.stats.skipped_rules == 3
    ((_, kept),) = newer.rules.values()
    assert f"signup.burst@{burst + 1}>=1" in kept.render()


def test_the_rule_table_finds_exactly_the_rules_that_match() -> None:
    """The compiled table (first condition by bisection) agrees with ``BehaviourRule.matches``
    on many random rules and accounts, bounds and both operators included."""
    rng = random.Random(5)
    layout = (("a.x", 1), ("b.y", 2), ("c.z", 1), ("d.w", 1))
    versions = dict(layout)
    rules = []
    for i in range(300):
        conds = []
        for sid in rng.sample([s for s, _ in layout], rng.randint(2, 4)):
            op = rng.choice([">=", "<="])
            version = versions[sid] if rng.random() > 0.05 else versions[sid] + 1
            conds.append(Condition(sid, version, op, float(rng.randint(0, 10))))
        rules.append((i, BehaviourRule("g", rng.randint(0, 20), tuple(conds))))
    table = RuleTable(rules, layout)
    assert table.size == sum(1 for _, r in rules if r.unusable(versions) is None)
    for _ in range(300):
        values = {s: (None if rng.random() < 0.1 else float(rng.randint(0, 10))) for s, _ in layout}
        n = rng.randint(0, 25)
        got = table.match([SimpleNamespace(value=values[s]) for s, _ in layout], n)
        want = [i for i, r in rules if r.matches(values, versions, n)]
        assert sorted(got) == want
