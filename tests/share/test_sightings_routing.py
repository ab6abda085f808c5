"""The gateway's sightings, one envelope per publisher, each pushed to that publisher's TAXII
collection (or the fallback, or kept in the outbox); the queue across restarts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.share import publishers
from distillwatch.share.errors import IntelError
from distillwatch.share.index import IndicatorRef
from distillwatch.share.publishers import PUBLISHER_REF, safe_name
from distillwatch.share.sightings import STATE_FORMAT, STATE_NAME, Push, SightingsOutbox
from distillwatch.share.sign import identity_id, sign
from distillwatch.share.taxii_client import push_envelope
from tests.share.intel_world import IntelFiles, intel_files, receiver_log
from tests.share.taxii_world import (
    PASSWORDS,
    SIGHTINGS,
    SIGHTINGS_A,
    SIGHTINGS_C,
    Taxii,
    dead_url,
    taxii_server,
)

A1 = "indicator--a1a1a1a1-1111-4111-8111-111111111111"
A2 = "indicator--a2a2a2a2-2222-4222-8222-222222222222"
C1 = "indicator--c1c1c1c1-3333-4333-8333-333333333333"
PUBLISHER = {A1: "member-a", A2: "member-a", C1: "member-c"}
ACCOUNTS = ("acct-canary-1", "acct-canary-2", "acct-canary-3")
"""Local account ids: no envelope or state file may carry one."""


@pytest.fixture
def files(tmp_path: Path) -> IntelFiles:
    return intel_files(tmp_path / "intel")


@pytest.fixture
def taxii(files: IntelFiles, tmp_path: Path) -> Iterator[Taxii]:
    with taxii_server(files, tmp_path / "taxii") as t:
        yield t


def refs(*iids: str) -> dict[str, IndicatorRef]:
    return {i: IndicatorRef(i, PUBLISHER[i], "card", 100, 0.0, None, None) for i in iids}


def to(url: str) -> Push:
    """member-b's push to one collection."""

    def push(env: dict[str, Any]) -> int:
        return push_envelope(url, "member-b", PASSWORDS["member-b"], env, timeout_s=5)

    return push


def outbox(files: IntelFiles, folder: Path, **kw: Any) -> SightingsOutbox:
    return SightingsOutbox.open(folder, member="member-b", key=files.key_file("member-b"), **kw)


def run(box: SightingsOutbox, now: float) -> bool:
    work = box.take(now)
    if work is None:
        return False
    work()
    return True


def reports(folder: Path) -> dict[str, dict[str, Any]]:
    """The outbox's envelopes by publisher (the file name's tail; the last one of each)."""
    return {
        p.name.split("Z-", 1)[1].removesuffix(".json"): json.loads(p.read_text())
        for p in sorted(folder.glob("sightings-*Z-*.json"))
    }


def counts(bundle: dict[str, Any]) -> dict[str, int]:
    return {o["sighting_of_ref"]: o["count"] for o in bundle["objects"]}


def match_all(box: SightingsOutbox, t: float) -> None:
    """acct-1 and acct-2 match a's A1; acct-1 also c's C1; acct-3 a's A2."""
    box.saw(ACCOUNTS[0], refs(A1, C1), t)
    box.saw(ACCOUNTS[1], refs(A1), t + 1)
    box.saw(ACCOUNTS[2], refs(A2), t + 2)


def assert_private(folder: Path) -> None:
    for path in folder.iterdir():
        text = path.read_text()
        for account in ACCOUNTS:
            assert account not in text, (path, account)


def test_each_publisher_gets_its_envelope_on_its_collection(
    files: IntelFiles, taxii: Taxii, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    now = files.now.timestamp()  # the server checks the envelopes' times
    box = outbox(
        files,
        out,
        pushes={"member-a": to(taxii.collection(SIGHTINGS_A)),
                "member-c": to(taxii.collection(SIGHTINGS_C))},
    )  # fmt: skip
    match_all(box, now - 60)
    assert run(box, now)
    got = reports(out)
    assert set(got) == {"member-a", "member-c"}
    assert counts(got["member-a"]["bundle"]) == {A1: 2, A2: 1}
    assert counts(got["member-c"]["bundle"]) == {C1: 1}
    for publisher, env in got.items():
        assert env["signer"] == "member-b"
        assert {o[PUBLISHER_REF] for o in env["bundle"]["objects"]} == {identity_id(publisher)}
    assert box.unpushed == []
    # each publisher reads its own, verified as received intel is
    (for_a,) = taxii.sightings_at("member-a", tmp_path / "at-a", SIGHTINGS_A)
    (for_c,) = taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS_C)
    assert for_a == got["member-a"]["bundle"] and for_c == got["member-c"]["bundle"]
    assert taxii.sightings_at("member-a", tmp_path / "shared", SIGHTINGS) == []
    assert_private(out)


def test_fallback_collection_and_outbox_only(
    files: IntelFiles, taxii: Taxii, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = files.now.timestamp()
    # member-a has its own collection; member-c goes to the fallback
    out = tmp_path / "fallback"
    box = outbox(
        files,
        out,
        push=to(taxii.collection(SIGHTINGS)),
        pushes={"member-a": to(taxii.collection(SIGHTINGS_A))},
    )
    match_all(box, now - 60)
    assert run(box, now) and box.unpushed == []
    (for_a,) = taxii.sightings_at("member-a", tmp_path / "at-a", SIGHTINGS_A)
    (shared,) = taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS)
    assert counts(for_a) == {A1: 2, A2: 1} and counts(shared) == {C1: 1}

    # no fallback: member-c's sightings stay in the outbox, logged once
    only = tmp_path / "only"
    box = outbox(files, only, pushes={"member-a": to(taxii.collection(SIGHTINGS_A))})
    with caplog.at_level(logging.INFO, logger="distillwatch.share"):
        match_all(box, now - 60)
        assert run(box, now)
        box.saw("acct-canary-4", refs(C1), now + 1)
        assert run(box, now + 2)
    assert box.unpushed == []
    assert sorted(reports(only)) == ["member-a", "member-c"]  # two files: one name each
    assert len(list(only.glob("sightings-*-member-c.json"))) == 2
    stay = [r for r in caplog.records if "stay in the outbox" in r.getMessage()]
    assert len(stay) == 1 and "member-c" in stay[0].getMessage()
    state = json.loads((only / STATE_NAME).read_text())
    assert state["unpushed"] == [] and state["publishers"] == {}


def test_one_failing_collection_does_not_hold_back_the_others(
    files: IntelFiles, taxii: Taxii, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    now = files.now.timestamp()
    calls: list[str] = []
    down = to(dead_url())

    def failing(env: dict[str, Any]) -> int:
        calls.append(env["bundle"]["id"])
        return down(env)

    box = outbox(
        files, out, pushes={"member-a": failing, "member-c": to(taxii.collection(SIGHTINGS_C))}
    )
    match_all(box, now - 60)
    assert run(box, now)
    (a_file,) = [p.name for p in out.glob("sightings-*-member-a.json")]
    assert box.unpushed == [a_file] and box.queued_for == {a_file: "member-a"}
    (for_c,) = taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS_C)
    assert counts(for_c) == {C1: 1}

    # a second report while a's collection is down: c's new envelope goes, a's two wait and
    # the failing collection is tried once per report
    box.saw("acct-canary-4", refs(A2, C1), now + 1)
    calls.clear()
    assert run(box, now + 2)
    assert len(calls) == 1 and len(box.unpushed) == 2
    assert len(taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS_C)) == 2
    state = json.loads((out / STATE_NAME).read_text())
    assert state["unpushed"] == box.unpushed
    assert state["publishers"] == dict.fromkeys(box.unpushed, "member-a")

    # a restart, a's collection back: both pushed, oldest first, with no new match
    box = outbox(
        files,
        out,
        pushes={"member-a": to(taxii.collection(SIGHTINGS_A)),
                "member-c": to(taxii.collection(SIGHTINGS_C))},
    )  # fmt: skip
    assert box.queued_for == dict.fromkeys(box.unpushed, "member-a")
    assert run(box, now + 3) and box.unpushed == []
    got = taxii.sightings_at("member-a", tmp_path / "at-a", SIGHTINGS_A)
    assert sorted(json.dumps(counts(b), sort_keys=True) for b in got) == sorted(
        [json.dumps({A1: 2, A2: 1}, sort_keys=True), json.dumps({A2: 1})]
    )
    assert_private(out)


def test_an_old_state_file_still_loads_and_its_queue_goes_to_the_fallback(
    files: IntelFiles, taxii: Taxii, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    now = files.now.timestamp()
    # what the gateway wrote before reports were split: one envelope for every publisher
    body = {
        "type": "bundle",
        "id": "bundle--0e0e0e0e-0000-4000-8000-000000000000",
        "objects": [
            {"type": "sighting", "spec_version": "2.1",
             "id": f"sighting--0e0e0e0e-0000-4000-8000-00000000000{n}",
             "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
             "created_by_ref": identity_id("member-b"), "sighting_of_ref": iid, "count": 1}
            for n, iid in enumerate((A1, C1))
        ],
    }  # fmt: skip
    env = sign(body, "member-b", files.keys["member-b"], signed_at=files.now,
               expires=files.now.replace(year=files.now.year + 1))  # fmt: skip
    legacy = "sightings-20260101T000000000000Z.json"
    (out / legacy).write_text(json.dumps(env))
    old = {
        "format": STATE_FORMAT,
        "reported": {A1: {"count": 1, "until": None}, C1: {"count": 1, "until": None}},
        "unpushed": [legacy],
    }
    (out / STATE_NAME).write_text(json.dumps(old))

    # without a fallback it cannot be routed: kept in the outbox, not queued any more
    box = outbox(files, out, pushes={"member-a": to(taxii.collection(SIGHTINGS_A))})
    assert box.unpushed == [legacy] and box.queued_for == {}
    with caplog.at_level(logging.WARNING, logger="distillwatch.share"):
        assert run(box, now)
    assert box.unpushed == [] and (out / legacy).exists()
    assert any("every publisher" in r.getMessage() for r in caplog.records)

    # with one, it goes there; the counts reported before the restart are not sent again
    (out / STATE_NAME).write_text(json.dumps(old))
    box = outbox(
        files,
        out,
        push=to(taxii.collection(SIGHTINGS)),
        pushes={"member-a": to(taxii.collection(SIGHTINGS_A))},
    )
    box.saw(ACCOUNTS[0], refs(A1, C1), now - 60)  # the restore replays the same match
    assert run(box, now) and box.unpushed == []
    (shared,) = taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS)
    assert counts(shared) == {A1: 1, C1: 1}
    assert not list(out.glob("sightings-*-member-*.json"))  # nothing new to write
    box.saw(ACCOUNTS[1], refs(A1), now - 30)
    assert run(box, now + 1)
    assert counts(reports(out)["member-a"]["bundle"]) == {A1: 1}
    saved = json.loads((out / STATE_NAME).read_text())
    assert saved["reported"][A1]["count"] == 2 and saved["publishers"] == {}


def test_a_bad_publishers_entry_in_the_state_file_is_one_line(
    files: IntelFiles, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    state = {"format": STATE_FORMAT, "reported": {}, "unpushed": ["x.json"]}
    for bad in ({"x.json": 3}, ["x.json"]):
        (out / STATE_NAME).write_text(json.dumps({**state, "publishers": bad}))
        with pytest.raises(IntelError, match="not a sightings state file"):
            outbox(files, out)


def test_file_names_never_use_a_name_unsanitised() -> None:
    for name in ("../../etc/x", "a/b", "a\\b", ".hidden", "", "é", "a" * 200):
        safe = safe_name(name)
        assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
        assert len(safe) <= 57
    assert safe_name("a.b") != safe_name("a_b") != safe_name("a-b")


def test_doctests() -> None:
    import doctest

    from distillwatch.share import sightings_report

    for module in (publishers, sightings_report):
        result = doctest.testmod(module, raise_on_error=False, verbose=False)
        assert result.attempted >= 1 and result.failed == 0


# -- one replay's sightings: a file, or a folder of one envelope per publisher -------------


def test_import_writes_one_envelope_per_publisher_into_a_folder(
    files: IntelFiles, tmp_path: Path
) -> None:
    a = files.signed("member-a", files.a_bundle(), "a.json")
    c = files.signed("member-c", files.c_bundle(), "c.json")
    log, accounts, _ = receiver_log(tmp_path / "r", files.now)
    key = files.key_file("member-b")
    common = [
        "intel", "import", str(a), str(c), "--members", str(files.members),
        "--group-secret", str(files.secret), "--log", str(log), "--accounts", str(accounts),
        "-o", str(tmp_path / "m.jsonl"), "--member", "member-b", "--key", str(key),
        "--now", files.now.isoformat(),
    ]  # fmt: skip
    runner = CliRunner()
    folder = tmp_path / "sightings"
    folder.mkdir()
    r = runner.invoke(app, [*common, "--sightings", str(folder)])
    assert r.exit_code == 0, r.output
    assert "3 sighting(s)" in r.output
    got = reports(folder)
    assert set(got) == {"member-a", "member-c"}
    a_ids = {o["id"] for o in files.a_bundle()["objects"] if o["type"] == "indicator"}
    for publisher, env in got.items():
        objs = env["bundle"]["objects"]
        assert {o[PUBLISHER_REF] for o in objs} == {identity_id(publisher)}
        assert (publisher == "member-a") == all(o["sighting_of_ref"] in a_ids for o in objs)
    assert sorted(len(e["bundle"]["objects"]) for e in got.values()) == [1, 2]
    for text in (json.dumps(got),):
        for account in ("x-corr", "y-solo", "legit-1"):
            assert account not in text
    # a file: one envelope, as before (each sighting names its publisher)
    one = tmp_path / "one.json"
    r = runner.invoke(app, [*common, "--sightings", str(one)])
    assert r.exit_code == 0, r.output
    objs = json.loads(one.read_text())["bundle"]["objects"]
    assert len(objs) == 3
    assert {o[PUBLISHER_REF] for o in objs} == {identity_id("member-a"), identity_id("member-c")}


# -- the gateway's config: a collection per publisher ---------------------------------------


def _serve_config(files: IntelFiles, tmp: Path, **taxii: Any) -> Any:
    from distillwatch.gateway import load_config

    cfg = tmp / "gw.json"
    intel = {
        "bundles_dir": str(tmp / "inbox"), "members": str(files.members),
        "group_secret": str(files.secret), "member": "member-b",
        "key": str(files.key_file("member-b")), "sightings_dir": str(tmp / "outbox"),
        "taxii": {"url": "http://127.0.0.1:9/intel/", "collection": "intel", **taxii},
    }  # fmt: skip
    cfg.write_text(json.dumps({"upstream": "http://127.0.0.1:9/v1", "intel": intel}))
    return cfg, load_config(cfg)


def test_serve_routes_each_publisher_and_names_an_unknown_one(
    files: IntelFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distillwatch.cli.serve import build_intel_feed
    from distillwatch.errors import ConfigError

    monkeypatch.setenv("DISTILLWATCH_TAXII_PASSWORD", PASSWORDS["member-b"])
    path, cfg = _serve_config(
        files,
        tmp_path,
        sightings_collection=SIGHTINGS,
        sightings_collections={"member-a": SIGHTINGS_A, "member-c": SIGHTINGS},
    )
    feed = build_intel_feed(cfg, path)
    box = feed.outbox
    assert box is not None and set(box.pushes) == {"member-a", "member-c"}
    assert box.route("member-c") is box.push  # one collection, one push: skipped once
    assert box.route("member-a") is not box.push
    assert box.route("member-x") is box.push
    path, cfg = _serve_config(files, tmp_path, sightings_collections={"member-x": SIGHTINGS_A})
    with pytest.raises(ConfigError, match="member-x: not a member in") as err:
        build_intel_feed(cfg, path)
    assert "`intel.taxii.sightings_collections`" in str(err.value)
    assert str(err.value).startswith(str(path))
