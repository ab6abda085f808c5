"""Intrusion sets: the actors file (validated, with lines), ``attributed-to`` relationships,
stable ids, stix2-validator, privacy, and the MISP conversion with an actor."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from stix2validator import ValidationOptions, validate_string

from distillwatch.share.actors import actors_from_text, load_actors
from distillwatch.share.collect import Collector
from distillwatch.share.errors import IntelError
from distillwatch.share.export import ExportConfig, build_bundle, intrusion_set_id
from distillwatch.share.markings import TLP2_IDS
from distillwatch.share.misp import bundle_to_event
from distillwatch.share.sign import identity_id
from tests.share.test_export import ACTORS, assert_private, export
from tests.share.world import GROUP, NOW, SECRET, Side, provider_a

TWO = """\
actors:
  - name: Sandstorm Harvest
    campaigns:
      - camp_canary0001
      - camp_other0002
  - name: Quiet Reseller
    campaigns: [camp_nothing0003]
"""


def two_campaigns() -> Side:
    """provider_a with a second campaign (no indicators of its own) and a third."""
    side = provider_a()
    (camp,) = side.campaigns
    other = replace(camp, campaign_id="camp_other0002", accounts=["o-1", "o-2"], size=2)
    third = replace(camp, campaign_id="camp_nothing0003", accounts=["n-1", "n-2"], size=2)
    side.campaigns += [other, third]
    return side


def by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in bundle["objects"]:
        out.setdefault(o["type"], []).append(o)
    return out


@pytest.mark.parametrize("tlp", ["clear", "amber+strict", "red"])
def test_bundle_with_an_intrusion_set_passes_stix2_validator(tlp: str) -> None:
    bundle = export(provider_a(), tlp, actors=actors_from_text(ACTORS, "actors.yaml"))
    (iset,) = by_type(bundle)["intrusion-set"]
    result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1"))
    assert result.errors == []
    assert result.is_valid
    # its only warning is the one every deterministic id gets (UUIDv5, not v4)
    mine = [str(w) for w in result.warnings if iset["id"] in str(w)]
    assert mine and all("{103}" in w for w in mine), mine
    assert iset["object_marking_refs"] == [TLP2_IDS[tlp]]
    assert iset["created_by_ref"] == identity_id("member-a")
    assert iset["name"] == "Sandstorm Harvest" and iset["aliases"] == ["SH-1"]
    assert iset["resource_level"] == "organization"
    assert iset["primary_motivation"] == "organizational-gain"
    assert iset["goals"] == ["train a competing reasoning model"]
    assert iset["confidence"] == 70
    assert iset["first_seen"] == "2026-10-01T00:00:00Z"  # the analyst's, before the campaign's
    (camp,) = by_type(bundle)["campaign"]
    assert iset["last_seen"] == camp["last_seen"]


def test_attributed_to_relationships_and_a_stable_id() -> None:
    actors = actors_from_text(TWO, "actors.yaml")
    a = export(two_campaigns(), actors=actors)
    later = export(two_campaigns(), actors=actors, now=NOW + timedelta(days=9))
    recased = actors_from_text(TWO.replace("Sandstorm Harvest", "sandstorm   HARVEST"), "x.yaml")
    renamed = actors_from_text(TWO.replace("Sandstorm Harvest", "Sandstorm Harvest 2"), "x.yaml")
    got = by_type(a)
    isets = {s["name"]: s for s in got["intrusion-set"]}
    assert set(isets) == {"Sandstorm Harvest", "Quiet Reseller"}
    sid = isets["Sandstorm Harvest"]["id"]
    assert sid == intrusion_set_id(GROUP, "member-a", "sandstorm harvest")
    for other in (later, export(two_campaigns(), actors=recased)):
        (same,) = [s for s in by_type(other)["intrusion-set"] if s["id"] == sid]
        assert same["created"] == isets["Sandstorm Harvest"]["created"]
    assert sid not in json.dumps(export(two_campaigns(), actors=renamed))
    assert intrusion_set_id("other-group", "member-a", "sandstorm harvest") != sid
    assert intrusion_set_id(GROUP, "member-b", "sandstorm harvest") != sid
    campaigns = {c["id"] for c in got["campaign"]}
    attributed = [r for r in got["relationship"] if r["relationship_type"] == "attributed-to"]
    pairs = {(r["source_ref"], r["target_ref"]) for r in attributed}
    assert len(attributed) == len(pairs) == 3
    assert {s for s, _ in pairs} == campaigns  # every campaign, each to one intrusion set
    assert sum(t == sid for _, t in pairs) == 2  # one intrusion set, two campaigns
    for r in attributed:
        assert r["created_by_ref"] == identity_id("member-a")
        assert r["object_marking_refs"] == [TLP2_IDS["amber"]]
    ids = {r["id"] for r in attributed}
    assert ids == {
        r["id"] for r in by_type(later)["relationship"] if r["relationship_type"] == "attributed-to"
    }
    result = validate_string(json.dumps(a), ValidationOptions(version="2.1"))
    assert result.errors == []


def test_an_actor_without_an_exported_campaign_is_not_exported() -> None:
    side = provider_a()
    extra = replace(side.campaigns[0], campaign_id="camp_elsewhere", accounts=["e-1"], size=1)
    text = "actors:\n  - name: Idle\n    campaigns: [camp_elsewhere]\n"
    # known to the scan (campaigns.jsonl) but not collected: nothing to attribute
    col = Collector({c.campaign_id: c.accounts for c in side.campaigns}, side.accounts)
    col.run(lambda: [side.exchanges])
    config = ExportConfig(
        member="member-a", group=GROUP, group_secret=SECRET, actors=actors_from_text(text)
    )
    bundle, stats = build_bundle([*side.campaigns, extra], col, config, now=NOW)
    assert stats.actors == 0 and "intrusion-set" not in bundle.serialize()


def test_unknown_campaign_id_is_an_error_naming_file_and_line() -> None:
    text = ACTORS.replace("[camp_canary0001]", "[camp_canary0001, camp_canary001]")
    with pytest.raises(IntelError, match=r"^actors\.yaml:3: .*'camp_canary001'"):
        export(provider_a(), actors=actors_from_text(text, "actors.yaml"))


def test_actor_text_naming_a_local_id_is_refused() -> None:
    for leak in ("canary-acct-2", "camp_canary0001"):
        text = ACTORS.replace("Resells distilled", f"Runs {leak}, resells distilled")
        with pytest.raises(IntelError, match=f"`description` names the local id '{leak}'"):
            export(provider_a(), actors=actors_from_text(text, "actors.yaml"))
    # a longer token that merely contains an id is not one
    text = ACTORS.replace("Resells distilled", "Like canary-acct-2x, resells distilled")
    assert "intrusion-set" in json.dumps(export(provider_a(), actors=actors_from_text(text)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("    resource_level: organisation\n", r":4: `actors.0.resource_level`: unknown value "
         r"'organisation' \(did you mean 'organization'\?\); STIX 2.1 attack-resource-level-ov"),
        ("    primary_motivation: greed\n", r":4: `actors.0.primary_motivation`: unknown value "
         r"'greed'; STIX 2.1 attack-motivation-ov: accidental"),
        ("    secondary_motivations:\n      - ideology\n      - revenge!\n",
         r":6: `actors.0.secondary_motivations.1`: unknown value 'revenge!'"),
        ("    confidence: 101\n", r":4: `actors.0.confidence`: .*100 \(got 101\)"),
        ("    first_seen: 2026-10-01 10:00:00\n",
         r":4: `actors.0.first_seen`: a time needs a zone"),
        ("    campaign: [x]\n", r":4: `actors.0.campaign`: unknown key \(did you mean `campaigns`"),
        ("    name: again\n", r":4: `actors.0.name`: duplicate key \(first at line 2\)"),
    ],
)  # fmt: skip
def test_actors_file_errors_name_file_line_key_and_value(text: str, expected: str) -> None:
    head = "actors:\n  - name: X\n    campaigns: [c1]\n"
    with pytest.raises(IntelError, match=f"^a\\.yaml{expected}") as got:
        actors_from_text(head + text, "a.yaml")
    assert "\n" not in str(got.value)


def test_actors_file_structure_errors(tmp_path: Path) -> None:
    two = "actors:\n  - name: X\n    campaigns: [c1]\n  - name: Y\n    campaigns:\n      - c2\n"
    with pytest.raises(IntelError, match=r"^a:7: campaign 'c1' is attributed to 'X' \(line 3\)"):
        actors_from_text(two + "      - c1\n", "a")
    with pytest.raises(IntelError, match=r"^a:4: actor 'x' is listed twice \(also at line 2\)"):
        actors_from_text("actors:\n  - name: X\n    campaigns: [c1]\n  - name: x\n"
                         "    campaigns: [c2]\n", "a")  # fmt: skip
    for bad, msg in (("", "mapping"), ("actors: []\n", "must not be empty"), ("a: [\n", "YAML")):
        with pytest.raises(IntelError, match=msg):
            actors_from_text(bad, "a")
    with pytest.raises(IntelError, match="cannot read"):
        load_actors(tmp_path / "missing.yaml")
    ok = load_actors(_write(tmp_path / "ok.yaml", ACTORS))
    assert ok.of("camp_canary0001") is not None and ok.of("camp_x") is None
    assert ok.actors[0].entry.first_seen is not None
    assert ok.actors[0].entry.first_seen.isoformat() == "2026-10-01T00:00:00+00:00"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def intrusion_clusters(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["value"]: c
        for g in event.get("Galaxy", [])
        if g["type"] == "stix-2.1-intrusion-set"
        for c in g["GalaxyCluster"]
    }


def test_misp_conversion_with_an_actor() -> None:
    """misp-stix makes each intrusion set an event-level ``stix-2.1-intrusion-set`` cluster."""
    event = bundle_to_event(export(two_campaigns(), actors=actors_from_text(TWO)))["Event"]
    assert set(intrusion_clusters(event)) == {"Sandstorm Harvest", "Quiet Reseller"}
    assert len(event["Attribute"]) >= 8  # the indicators are still converted
    event = bundle_to_event(export(provider_a(), actors=actors_from_text(ACTORS)))["Event"]
    meta = intrusion_clusters(event)["Sandstorm Harvest"]["meta"]
    assert meta["synonyms"] == ["SH-1"] and meta["resource_level"] == "organization"
    assert meta["first_seen"] == "2026-10-01T00:00:00Z"
    assert_private(json.dumps(event))
    assert "camp_canary0001" not in json.dumps(event)
