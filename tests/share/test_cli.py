"""``distillwatch intel keygen|export|import``: files in, files out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from stix2validator import ValidationOptions, validate_string
from typer.testing import CliRunner

from distillwatch.cli.main import app
from tests.share.test_export import assert_private
from tests.share.world import GROUP, NOW, provider_a, provider_b

runner = CliRunner()
WHEN = ["--now", NOW.isoformat()]


def setup_members(tmp: Path) -> Path:
    for member in ("member-a", "member-b"):
        r = runner.invoke(app, ["intel", "keygen", "--member", member, "--out", str(tmp / "keys")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["intel", "keygen", "--group-secret", str(tmp / "keys/group.secret")])
    assert r.exit_code == 0, r.output
    members = tmp / "members.yaml"
    pub = (tmp / "keys/member-a.pub").read_text().strip()
    members.write_text(
        f"group: {GROUP}\nmembers:\n  member-a:\n    public_key: {pub}\n    weight: 0.9\n"
    )
    return members


def do_export(tmp: Path) -> Path:
    a = provider_a().write(tmp / "a")
    out = tmp / "a.bundle.json"
    r = runner.invoke(app, ["intel", "export", str(a["log"]), "--campaigns", str(a["campaigns"]),
                            "--accounts", str(a["accounts"]), "--member", "member-a",
                            "--key", str(tmp / "keys/member-a.key"), "--group", GROUP,
                            "--group-secret", str(tmp / "keys/group.secret"), "-o", str(out),
                            "--stix", str(tmp / "a.stix.json"), *WHEN])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 campaign(s)" in r.output
    return out


def test_keygen_export_import_round_trip(tmp_path: Path) -> None:
    members = setup_members(tmp_path)
    assert (tmp_path / "keys/member-a.key").stat().st_mode & 0o077 == 0
    bundle = do_export(tmp_path)
    stix = (tmp_path / "a.stix.json").read_text()
    assert validate_string(stix, ValidationOptions(version="2.1")).errors == []
    for f in (bundle, tmp_path / "a.stix.json"):
        assert_private(f.read_text())
    b = provider_b().write(tmp_path / "b")
    out = tmp_path / "matches.jsonl"
    sightings = tmp_path / "sightings.json"
    r = runner.invoke(app, ["intel", "import", str(bundle), "--members", str(members),
                            "--group-secret", str(tmp_path / "keys/group.secret"),
                            "--log", str(b["log"]), "--accounts", str(b["accounts"]),
                            "-o", str(out), "--sightings", str(sightings),
                            "--member", "member-b", "--key", str(tmp_path / "keys/member-b.key"),
                            *WHEN])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["account_id"] for row in rows} == {
        "b-attacker-card",
        "b-attacker-ip",
        "b-attacker-template",
    }
    assert all(row["ceiling"] == "monitor" for row in rows)
    env = json.loads(sightings.read_text())
    assert env["signer"] == "member-b"
    assert {o["type"] for o in env["bundle"]["objects"]} == {"sighting"}


def test_import_rejects_with_a_reason_and_exit_1(tmp_path: Path) -> None:
    members = setup_members(tmp_path)
    bundle = do_export(tmp_path)
    env = json.loads(bundle.read_text())
    env["bundle"]["objects"][0]["name"] = "someone else"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(env))
    b = provider_b().write(tmp_path / "b")
    r = runner.invoke(app, ["intel", "import", str(bad), str(tmp_path / "a.stix.json"),
                            str(bundle), "--members", str(members),
                            "--group-secret", str(tmp_path / "keys/group.secret"),
                            "--log", str(b["log"]), "-o", str(tmp_path / "m.jsonl"),
                            *WHEN])  # fmt: skip
    assert r.exit_code == 1
    assert "tampered" in r.output and "unsigned" in r.output
    assert "1 bundle(s) accepted, 2 rejected" in r.output


def test_errors_are_one_line(tmp_path: Path) -> None:
    setup_members(tmp_path)
    secret = tmp_path / "bad.secret"
    secret.write_text("not hex")
    r = runner.invoke(app, ["intel", "export", "nope.jsonl", "--campaigns", "nope",
                            "--member", "member-a", "--key", str(tmp_path / "keys/member-a.key"),
                            "--group", GROUP, "--group-secret", str(secret)])  # fmt: skip
    assert r.exit_code == 2
    assert "hex" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["intel", "keygen", "--member", "member-a",
                            "--out", str(tmp_path / "keys")])  # fmt: skip
    assert r.exit_code == 2 and "exists" in r.output
    r = runner.invoke(app, ["intel", "keygen"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["intel", "export", "x", "--campaigns", "c", "--member", "bad name!",
                            "--key", "k", "--group", GROUP,
                            "--group-secret", str(tmp_path / "keys/group.secret")])  # fmt: skip
    assert r.exit_code == 2 and "invalid" in r.output


def export_args(tmp: Path, actors: Path, *extra: str) -> list[str]:
    a = provider_a().write(tmp / "a")
    return ["intel", "export", str(a["log"]), "--campaigns", str(a["campaigns"]),
            "--accounts", str(a["accounts"]), "--member", "member-a", "--group", GROUP,
            "--group-secret", str(tmp / "keys/group.secret"), "--actors", str(actors),
            *extra, *WHEN]  # fmt: skip


def test_export_with_actors_signs_an_intrusion_set_a_receiver_accepts(tmp_path: Path) -> None:
    from tests.share.test_export import ACTORS

    members = setup_members(tmp_path)
    actors = tmp_path / "actors.yaml"
    actors.write_text(ACTORS)
    out, stix = tmp_path / "a.bundle.json", tmp_path / "a.stix.json"
    key = str(tmp_path / "keys/member-a.key")
    r = runner.invoke(app, export_args(tmp_path, actors, "--key", key, "-o", str(out),
                                       "--stix", str(stix)))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 campaign(s) (1 attributed to 1 actor(s)), indicators:" in r.output
    body = json.loads(stix.read_text())
    (iset,) = [o for o in body["objects"] if o["type"] == "intrusion-set"]
    assert iset["name"] == "Sandstorm Harvest"
    assert [o["target_ref"] for o in body["objects"]
            if o.get("relationship_type") == "attributed-to"] == [iset["id"]]  # fmt: skip
    assert validate_string(stix.read_text(), ValidationOptions(version="2.1")).errors == []
    for f in (out, stix):
        assert_private(f.read_text())
        assert "camp_canary0001" not in f.read_text()
    b = provider_b().write(tmp_path / "b")
    r = runner.invoke(app, ["intel", "import", str(out), "--members", str(members),
                            "--group-secret", str(tmp_path / "keys/group.secret"),
                            "--log", str(b["log"]), "-o", str(tmp_path / "m.jsonl"),
                            *WHEN])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 bundle(s) accepted, 0 rejected" in r.output


def test_export_actors_errors_are_one_line(tmp_path: Path) -> None:
    from tests.share.test_export import ACTORS

    setup_members(tmp_path)
    actors = tmp_path / "actors.yaml"
    out = tmp_path / "x.json"
    key = ["--key", str(tmp_path / "keys/member-a.key"), "-o", str(out)]
    bad = {
        ACTORS.replace("organization", "organisation"): "actors.yaml:7: "
        "`actors.0.resource_level`: unknown value 'organisation' (did you mean 'organization'?)",
        ACTORS.replace("[camp_canary0001]", "[camp_canary0002]"): "actors.yaml:3: actor "
        "'Sandstorm Harvest': no campaign 'camp_canary0002' in campaigns.jsonl",
    }
    for text, message in bad.items():
        actors.write_text(text)
        for fmt in ("stix", "misp"):
            r = runner.invoke(app, export_args(tmp_path, actors, "--format", fmt, *key))
            assert r.exit_code == 2, r.output
            assert message in " ".join(r.output.split()), r.output
            assert "Traceback" not in r.output and not out.exists()
    r = runner.invoke(app, export_args(tmp_path, tmp_path / "none.yaml", *key))
    assert r.exit_code == 2 and "cannot read" in r.output and "none.yaml" in r.output


def test_export_format_misp_with_actors(tmp_path: Path) -> None:
    from tests.share.test_export import ACTORS

    setup_members(tmp_path)
    actors = tmp_path / "actors.yaml"
    actors.write_text(ACTORS)
    out = tmp_path / "event.json"
    r = runner.invoke(app, export_args(tmp_path, actors, "--format", "misp", "-o", str(out)))
    assert r.exit_code == 0, r.output
    assert "1 campaign(s) (1 attributed to 1 actor(s)), " in r.output
    assert "MISP attribute(s) [tlp:amber]" in " ".join(r.output.split())
    event = json.loads(out.read_text())["Event"]
    clusters = [(g["type"], c["value"]) for g in event["Galaxy"] for c in g["GalaxyCluster"]]
    assert ("stix-2.1-intrusion-set", "Sandstorm Harvest") in clusters
    assert_private(out.read_text())
