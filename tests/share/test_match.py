"""Import and match: O(1) look-ups, trust policy, expiry, revocation, rotation, sightings."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import stix2
from stix2validator import ValidationOptions, validate_string

from distillwatch.records import Action
from distillwatch.share.collect import Collector
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.trust import TrustPolicy
from tests.share.test_export import assert_private, export
from tests.share.world import CANARY_CARD, GROUP, NOW, SECRET, Side, provider_a, provider_b

POLICY = TrustPolicy(GROUP, {}, {"member-a": 0.9, "member-c": 0.9})


def matcher(*bundles: tuple[str, dict[str, Any]], side: Side | None = None,
            now_offset: timedelta = timedelta(0)) -> IntelMatcher:  # fmt: skip
    index = IntelIndex(GROUP, SECRET)
    for member, b in bundles:
        index.add_bundle(member, b, now=NOW + now_offset)
    side = side or provider_b()
    m = IntelMatcher(index, POLICY, side.accounts)
    for e in side.exchanges:
        m.observe(e, e.ts.timestamp())
    return m


def test_receiver_matches_the_operator_not_its_customers() -> None:
    m = matcher(("member-a", export(provider_a())))
    t = NOW.timestamp()
    for aid in ("b-attacker-card", "b-attacker-ip", "b-attacker-template"):
        ev = m.evidence(aid, t)
        assert ev is not None and ev.evidence > 0, aid
        assert "from member-a" in ev.explanation
    assert m.evidence("b-legit", t) is None
    kinds = {r.kind for r in m.matched("b-attacker-ip", t)}
    assert kinds == {"ip", "net"}
    assert {r.kind for r in m.matched("b-attacker-template", t)} == {"scaffold"}


def test_one_member_is_capped_at_monitor_two_corroborate() -> None:
    bundle = export(provider_a())
    t = NOW.timestamp()
    solo = matcher(("member-a", bundle))
    ev = solo.evidence("b-attacker-card", t)
    assert ev is not None and ev.evidence <= POLICY.solo_evidence
    assert "uncorroborated" in ev.explanation
    assert solo.ceiling("b-attacker-card", t) is Action.MONITOR
    assert solo.campaign_of("b-attacker-card") is None  # one member never names a campaign
    other = copy.deepcopy(bundle)  # the same intel, as published by a second member
    for o in other["objects"]:
        if o["type"] == "indicator":
            o["id"] = o["id"].replace("indicator--", "indicator--") + "-c"
    both = matcher(("member-a", bundle), ("member-c", other))
    ev2 = both.evidence("b-attacker-card", t)
    assert ev2 is not None and ev2.evidence > POLICY.solo_evidence
    assert both.ceiling("b-attacker-card", t) is Action.BLOCK
    assert (both.campaign_of("b-attacker-card") or "").startswith("campaign--")
    assert both.campaign_of("b-legit") is None
    untrusted = matcher(("member-x", bundle))  # weight 0: not a member we trust
    assert untrusted.evidence("b-attacker-card", t) is not None
    assert untrusted.evidence("b-attacker-card", t).evidence == 0.0  # type: ignore[union-attr]


def test_expired_revoked_replaced_and_foreign_group() -> None:
    bundle = export(provider_a())
    later = matcher(("member-a", bundle), now_offset=timedelta(days=200))
    assert later.index.stats.expired > 0 and later.index.stats.indexed == 0
    revoked = copy.deepcopy(bundle)
    for o in revoked["objects"]:
        if o["type"] == "indicator":
            o["revoked"] = True
            o["modified"] = "2026-11-25T13:00:00.000Z"
    m = matcher(("member-a", bundle), ("member-a", revoked))
    assert m.index.stats.revoked > 0 and not m.index.refs
    assert m.evidence("b-attacker-card", NOW.timestamp()) is None
    stale = matcher(("member-a", revoked), ("member-a", bundle))  # older version: ignored
    assert not stale.index.refs
    side = provider_a()
    col = Collector({c.campaign_id: c.accounts for c in side.campaigns}, side.accounts)
    col.run(lambda: [side.exchanges])
    config = ExportConfig(member="member-a", group="other-group", group_secret=SECRET)
    foreign = json.loads(build_bundle(side.campaigns, col, config, now=NOW)[0].serialize())
    fm = matcher(("member-a", foreign))
    assert fm.index.stats.foreign_group > 0 and not fm.index.refs


def test_expiry_at_match_time() -> None:
    m = matcher(("member-a", export(provider_a())))
    assert m.evidence("b-attacker-ip", (NOW + timedelta(days=8)).timestamp()) is None
    assert m.evidence("b-attacker-card", (NOW + timedelta(days=8)).timestamp()) is not None


def test_rotation_next_epoch_indicators_still_match_with_their_epoch_key() -> None:
    side = provider_a()
    col = Collector({c.campaign_id: c.accounts for c in side.campaigns}, side.accounts)
    col.run(lambda: [side.exchanges])
    later = NOW + timedelta(days=7)
    cfg = ExportConfig(member="member-a", group=GROUP, group_secret=SECRET)
    b2 = json.loads(build_bundle(side.campaigns, col, cfg, now=later)[0].serialize())
    b1 = export(provider_a())
    d1 = {
        o["pattern"].split("digest=")[-1]
        for o in b1["objects"]
        if "digest=" in o.get("pattern", "")
    }
    d2 = {
        o["pattern"].split("digest=")[-1]
        for o in b2["objects"]
        if "digest=" in o.get("pattern", "")
    }
    assert d1 and d2 and not d1 & d2  # nothing links the two weeks' digests
    m = matcher(("member-a", b2), now_offset=timedelta(days=7))
    assert m.evidence("b-attacker-card", later.timestamp()) is not None


def test_sightings_are_valid_stix_and_private() -> None:
    m = matcher(("member-a", export(provider_a())))
    found = m.sightings("member-b", NOW)
    assert found and all(s.count >= 1 for s in found)
    text = stix2.v21.Bundle(objects=found).serialize()
    result = validate_string(text, ValidationOptions(version="2.1"))
    assert result.errors == []
    assert_private(text)
    assert "b-attacker" not in text


def test_lookup_is_a_dict_access() -> None:
    m = matcher(("member-a", export(provider_a())))
    digest = next(iter(m.index.by_digest))
    assert m.index.lookup(digest, NOW.timestamp())
    assert not m.index.lookup(b"\0" * 16, NOW.timestamp())
    ip_digests = [d for d, refs in m.index.by_digest.items() if refs[0].kind == "ip"]
    assert ip_digests
    later = (NOW + timedelta(days=8)).timestamp()  # past the addresses' lifetime
    assert not any(m.index.lookup(d, later) for d in ip_digests)
    assert m.index.stats.expired >= len(ip_digests)
    assert m.index.match_value("card", CANARY_CARD, later)


def test_weak_kinds_stay_weak_whatever_the_publisher_claims() -> None:
    bundle = export(provider_a())
    for o in bundle["objects"]:
        if o["type"] == "indicator":
            o["confidence"] = 100  # an over-confident publisher
    other = copy.deepcopy(bundle)
    for o in other["objects"]:
        if o["type"] == "indicator":
            o["id"] += "-c"
    both = matcher(("member-a", bundle), ("member-c", other))
    t = NOW.timestamp()
    ip_only = both.evidence("b-attacker-ip", t)  # matched address and network
    card = both.evidence("b-attacker-card", t)
    assert ip_only is not None and card is not None
    assert ip_only.evidence < card.evidence
    net = POLICY.credit("net", 100)
    assert net < POLICY.credit("ip", 100) < POLICY.credit("card", 100)


def test_intel_arriving_later_reaches_accounts_already_seen() -> None:
    index = IntelIndex(GROUP, SECRET)
    side = provider_b()
    touched: list[str] = []
    m = IntelMatcher(index, POLICY, side.accounts, on_change=touched.append)
    ex = [e for e in side.exchanges if e.account_id == "b-attacker-card"]
    m.observe(ex[0], ex[0].ts.timestamp())
    assert m.evidence("b-attacker-card", NOW.timestamp()) is None
    index.add_bundle("member-a", export(provider_a()), now=NOW)
    m.observe(ex[1], ex[1].ts.timestamp())
    assert m.evidence("b-attacker-card", NOW.timestamp()) is not None
    assert touched == ["b-attacker-card"]


def test_a_weak_match_does_not_corroborate_a_strong_claim() -> None:
    strong = export(provider_a())
    weak = copy.deepcopy(strong)  # member-c publishes only the network of the same operator
    weak["objects"] = [
        {**o, "id": o["id"] + "-c"}
        for o in weak["objects"]
        if o["type"] == "indicator" and "kind=net" in o["pattern"]
    ]
    m = matcher(("member-a", strong), ("member-c", weak))
    t = NOW.timestamp()
    kinds = {(r.member, r.kind) for r in m.matched("b-attacker-ip", t)}
    assert ("member-c", "net") in kinds and ("member-a", "ip") in kinds
    assert not m.corroborated("b-attacker-ip", t)
    assert m.ceiling("b-attacker-ip", t) is Action.MONITOR
