"""MISP export: a real exported bundle → a MISP event (misp-stix), its attributes and tags,
no raw data (the privacy canaries), and ``intel export --format misp``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pymisp import MISPEvent
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.share.markings import TLP2_IDS
from distillwatch.share.misp import CATEGORY, MISSING, bundle_to_event
from distillwatch.share.pattern import KeyedHash, parse
from tests.share.test_cli import WHEN, do_export, setup_members
from tests.share.test_export import assert_private, export
from tests.share.test_rules import bundle as bundle_with_rule
from tests.share.world import GROUP, provider_a

runner = CliRunner()


def tags(thing: dict[str, Any]) -> list[str]:
    return [t["name"] for t in thing.get("Tag", [])]


def indicators(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["id"].split("--")[1]: o for o in bundle["objects"] if o["type"] == "indicator"}


def test_indicators_become_keyed_text_attributes_with_their_tags() -> None:
    bundle = bundle_with_rule()
    event = bundle_to_event(bundle)["Event"]
    loaded = MISPEvent()
    loaded.load(json.dumps({"Event": event}))  # pymisp reads (and empties) what it loads
    assert len(loaded.attributes) == len(event["Attribute"])
    ours = indicators(bundle)
    attrs = {a["uuid"]: a for a in event["Attribute"]}
    assert set(attrs) == set(ours)  # every indicator, by its own uuid
    assert not [o for o in event.get("Object", []) if o["name"] == "stix2-pattern"]
    forms = set()
    (campaign,) = [o["name"] for o in bundle["objects"] if o["type"] == "campaign"]
    for uid, ind in ours.items():
        a = attrs[uid]
        form = parse(ind["pattern"])
        kind = form.kind if isinstance(form, KeyedHash) else ind["pattern"].split()[0]
        kind = {"scaffold-sketch": "scaffold", "behaviour-rule": "rule"}.get(kind, kind)
        forms.add(ind["pattern"].split()[0])
        assert a["type"] == "text" and a["value"] == ind["pattern"]
        assert a["to_ids"] is False  # only a group member can match it, with intel import
        assert a["category"] == CATEGORY[kind]
        t = tags(a)
        assert "tlp:amber" in t
        assert f'distillwatch:kind="{kind}"' in t
        assert f'distillwatch:pattern="{ind["pattern"].split()[0]}"' in t
        assert any(x.startswith("misp:confidence-level=") for x in t)
        assert ind["name"] in a["comment"] and str(ind["confidence"]) in a["comment"]
        assert ind["valid_until"] in a["comment"]
        clusters = [c["value"] for g in a.get("Galaxy", []) for c in g["GalaxyCluster"]]
        assert clusters == [campaign]
    assert forms == {"keyed-hash", "scaffold-sketch", "behaviour-rule"}
    atlas = {c["value"] for g in event["Galaxy"] for c in g["GalaxyCluster"]}
    assert {"Extract AI Model", "AI Service Proxies"} <= atlas
    assert 'misp-galaxy:producer="member-a"' in tags(event)
    assert "1 distillation campaign(s) from member-a (TLP:AMBER)" in event["info"]
    assert event["date"] == "2026-11-25" and event["distribution"] == "0"


@pytest.mark.parametrize("tlp", list(TLP2_IDS))
def test_event_carries_the_exported_tlp_only(tlp: str) -> None:
    event = bundle_to_event(export(provider_a(), tlp))["Event"]
    assert [t for t in tags(event) if t.startswith("tlp:")] == [f"tlp:{tlp}"]
    for a in event["Attribute"]:
        assert [t for t in tags(a) if t.startswith("tlp:")] == [f"tlp:{tlp}"]


def test_conversion_is_deterministic() -> None:
    a, b = bundle_to_event(export(provider_a())), bundle_to_event(export(provider_a()))
    assert a["Event"]["uuid"] == b["Event"]["uuid"]
    assert [x["uuid"] for x in a["Event"]["Attribute"]] == [
        x["uuid"] for x in b["Event"]["Attribute"]
    ]


def test_privacy_misp_event_holds_no_canary_raw_or_unkeyed_hashed() -> None:
    for bundle in (export(provider_a()), bundle_with_rule()):
        event = bundle_to_event(bundle)
        assert len(event["Event"]["Attribute"]) >= 8  # not vacuous: everything was converted
        assert_private(json.dumps(event))
        assert_private(json.dumps(event, ensure_ascii=False))


def test_cli_export_format_misp(tmp_path: Path) -> None:
    setup_members(tmp_path)
    signed = do_export(tmp_path)  # the default format: a signed STIX bundle, as before
    assert json.loads(signed.read_text())["format"] == "distillwatch-signed-bundle/1"
    a = provider_a().write(tmp_path / "a2")
    out = tmp_path / "event.json"
    args = ["intel", "export", str(a["log"]), "--campaigns", str(a["campaigns"]),
            "--accounts", str(a["accounts"]), "--member", "member-a", "--group", GROUP,
            "--group-secret", str(tmp_path / "keys/group.secret"), "--tlp", "green",
            "--format", "misp", "-o", str(out), "--stix", str(tmp_path / "b.stix.json"),
            *WHEN]  # fmt: skip
    r = runner.invoke(app, args)  # no --key: a MISP event is not signed
    assert r.exit_code == 0, r.output
    stix = json.loads((tmp_path / "b.stix.json").read_text())
    n = len(indicators(stix))
    assert f"1 campaign(s), {n} MISP attribute(s) [tlp:green]" in r.output
    text = out.read_text()
    assert_private(text)
    event = MISPEvent()
    event.load(text)
    assert [t.name for t in event.tags if t.name.startswith("tlp:")] == ["tlp:green"]
    assert {a.uuid for a in event.attributes} == set(indicators(stix))


def test_cli_export_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_members(tmp_path)
    a = provider_a().write(tmp_path / "a")
    base = ["intel", "export", str(a["log"]), "--campaigns", str(a["campaigns"]),
            "--member", "member-a", "--group", GROUP,
            "--group-secret", str(tmp_path / "keys/group.secret"), *WHEN]  # fmt: skip
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "give --key" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, [*base, "--format", "openioc"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    monkeypatch.setitem(sys.modules, "misp_stix_converter", None)  # the extra is absent
    r = runner.invoke(app, [*base, "--format", "misp", "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 2, r.output
    assert MISSING in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "e.json").exists()
