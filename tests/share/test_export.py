"""Export: valid STIX 2.1 (stix2-validator, 0 errors), TLP 2.0, ATLAS, and no raw data."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import datetime
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_string

from distillwatch.share.actors import Actors, actors_from_text
from distillwatch.share.collect import Collector
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.keys import fold
from distillwatch.share.markings import TLP2_IDS
from distillwatch.share.pattern import parse
from tests.share.world import (
    CANARY_AGENT,
    CANARY_CARD,
    CANARY_DOMAIN,
    CANARY_HEAD,
    CANARY_IPS,
    CANARY_PROMPTS,
    CANARY_TAIL,
    GROUP,
    NOW,
    SECRET,
    Side,
    provider_a,
)


def export(
    side: Side, tlp: str = "amber", actors: Actors | None = None, now: datetime = NOW
) -> dict[str, Any]:
    col = Collector({c.campaign_id: c.accounts for c in side.campaigns}, side.accounts)
    col.run(lambda: [side.exchanges])
    config = ExportConfig(
        member="member-a", group=GROUP, group_secret=SECRET, tlp=tlp, actors=actors
    )
    bundle, _ = build_bundle(side.campaigns, col, config, now=now)
    out: dict[str, Any] = json.loads(bundle.serialize())
    return out


def kinds(bundle: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in bundle["objects"]:
        if o["type"] == "indicator":
            form = parse(o["pattern"])
            k = getattr(form, "kind", "scaffold")
            out[k] = out.get(k, 0) + 1
    return out


@pytest.mark.parametrize("tlp", ["clear", "amber", "red"])
def test_bundle_passes_stix2_validator_with_no_errors(tlp: str) -> None:
    bundle = export(provider_a(), tlp)
    result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1"))
    assert result.errors == []
    assert result.is_valid


def test_bundle_content() -> None:
    bundle = export(provider_a())
    by_type: dict[str, list[dict[str, Any]]] = {}
    for o in bundle["objects"]:
        by_type.setdefault(o["type"], []).append(o)
    assert {m["id"] for m in by_type["marking-definition"]} == set(TLP2_IDS.values())
    assert all("definition_type" not in m for m in by_type["marking-definition"])
    refs = {r["external_id"] for ap in by_type["attack-pattern"] for r in ap["external_references"]}
    assert {"AML.T0024.002", "AML.T0008.005", "AML.CS0056"} <= refs
    (camp,) = by_type["campaign"]
    assert "camp_canary0001" not in json.dumps(bundle)
    assert camp["confidence"] == 100
    for ind in by_type["indicator"]:
        assert ind["pattern_type"] == "distillwatch"
        assert ind["valid_from"] < ind["valid_until"]
        assert ind["object_marking_refs"] == [TLP2_IDS["amber"]]
        assert 0 <= ind["confidence"] <= 100
    indicates = [r for r in by_type["relationship"] if r["relationship_type"] == "indicates"]
    assert len(indicates) == len(by_type["indicator"])
    assert kinds(bundle) == {
        "card": 1,
        "email_domain": 1,
        "ip": 2,
        "net": 1,
        "user_agent": 1,
        "scaffold": 2,
    }


def test_re_export_keeps_ids() -> None:
    a, b = export(provider_a()), export(provider_a())
    assert [o["id"] for o in a["objects"]] == [o["id"] for o in b["objects"]]


def _forms(value: str) -> set[str]:
    """A value and its unkeyed hashes (what a dictionary attack would try)."""
    out = set()
    for v in {value, value.lower(), value.strip().lower()}:
        raw = v.encode()
        out |= {v, f"{zlib.crc32(raw):08x}"}
        for h in (hashlib.sha256, hashlib.md5, hashlib.sha1, hashlib.blake2b):
            out.add(h(raw).hexdigest())
            out.add(h(raw).hexdigest()[:32])
    return out


def canaries() -> set[str]:
    values = [CANARY_CARD, CANARY_DOMAIN, CANARY_AGENT, *CANARY_IPS, "203.0.113.0/24"]
    values += [*CANARY_PROMPTS, CANARY_HEAD, CANARY_TAIL, fold(CANARY_HEAD), fold(CANARY_TAIL)]
    values += ["CANARY-SCAFFOLD", "zebra quartz", "CANARY-TAIL-OMEGA", "canary-acct"]
    out: set[str] = set()
    for v in values:
        out |= _forms(v)
    out |= {f"{k}\x00{v}" for k in ("ip", "card") for v in (CANARY_CARD, *CANARY_IPS)}
    return out


def assert_private(text: str) -> None:
    low = text.lower()
    leaked = sorted(c for c in canaries() if c.lower() in low)
    assert not leaked, leaked


ACTORS = """\
actors:
  - name: Sandstorm Harvest
    campaigns: [camp_canary0001]
    aliases: [SH-1]
    description: Resells distilled reasoning models.
    goals: [train a competing reasoning model]
    resource_level: organization
    primary_motivation: organizational-gain
    first_seen: 2026-10-01
    confidence: 70
"""


@pytest.mark.parametrize("attributed", [False, True])
def test_privacy_no_canary_raw_or_unkeyed_hashed(attributed: bool) -> None:
    actors = actors_from_text(ACTORS, "actors.yaml") if attributed else None
    bundle = export(provider_a(), actors=actors)
    assert sum(kinds(bundle).values()) >= 8  # the test is not vacuous: everything was shared
    sets = [o for o in bundle["objects"] if o["type"] == "intrusion-set"]
    assert len(sets) == attributed  # not vacuous either: the actor was exported
    for text in (json.dumps(bundle), json.dumps(bundle, ensure_ascii=False), json.dumps(sets)):
        assert_private(text)
        assert "camp_canary0001" not in text  # the local campaign id the actors file names


def test_attributes_legit_customers_hold_are_never_exported() -> None:
    side = provider_a()
    legit = next(a for a in side.accounts if a.startswith("legit"))
    shared_ip = CANARY_IPS[0]
    side.exchanges.append(side.exchanges[-1].__class__(
        id="x-legit-shared", ts=NOW, account_id=legit, ip=shared_ip, model="m",
        user_agent=CANARY_AGENT, request={"prompt": CANARY_PROMPTS[0]},
    ))  # fmt: skip
    got = kinds(export(side))
    assert got.get("ip") == 1  # the other canary address is still attacker-only
    assert "user_agent" not in got and "net" not in got
    assert "scaffold" not in got  # a legit customer sent the template
