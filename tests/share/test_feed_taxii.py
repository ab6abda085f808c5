"""The feed's TAXII pull and its sightings outbox, against our TAXII server on loopback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from distillwatch.share.errors import IntelError
from distillwatch.share.feed import TAXII_STATE, BundleFolder, TaxiiPull
from distillwatch.share.index import IndicatorRef
from distillwatch.share.sightings import STATE_NAME, SightingsOutbox
from distillwatch.share.sign import sign
from distillwatch.share.taxii_client import push_envelope
from tests.share.intel_world import IntelFiles, intel_files
from tests.share.taxii_world import (
    INTEL,
    PASSWORDS,
    SIGHTINGS,
    Taxii,
    dead_url,
    silent_server,
    tampered,
    taxii_server,
)


@pytest.fixture
def files(tmp_path: Path) -> IntelFiles:
    return intel_files(tmp_path / "intel")


@pytest.fixture
def taxii(files: IntelFiles, tmp_path: Path) -> Iterator[Taxii]:
    with taxii_server(files, tmp_path / "taxii") as t:
        yield t


def feed_of(files: IntelFiles, inbox: Path, url: str, *, timeout_s: float = 10.0) -> BundleFolder:
    pull = TaxiiPull(url, "member-b", PASSWORDS["member-b"], inbox, timeout_s=timeout_s)
    return BundleFolder.open(inbox, members=files.members, group_secret=files.secret, taxii=pull)


def installed(feed: BundleFolder) -> set[str]:
    install = feed.prepare()
    if install is not None:
        install()
    return {r.member for r in feed.matcher.index.refs.values()}


def test_pulled_envelopes_are_verified_indexed_and_not_pulled_again(
    files: IntelFiles, taxii: Taxii, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"  # created by the feed: the pull fills it
    feed = feed_of(files, inbox, taxii.collection(INTEL))
    assert feed.pull() is False and installed(feed) == set()  # the collection is empty
    taxii.publish("member-a", files.signed("member-a", files.a_bundle(), "a.json"))
    assert feed.pull() is True
    assert installed(feed) == {"member-a"}
    state = json.loads((inbox / TAXII_STATE).read_text())
    assert state["last_added"]
    assert feed.pull() is False  # added_after: nothing new
    taxii.publish("member-c", files.signed("member-c", files.c_bundle(), "c.json"))
    assert feed.pull() is True and installed(feed) == {"member-a", "member-c"}
    pulled = sorted(p.name for p in inbox.glob("bundle-*.json"))
    assert len(pulled) == 2

    # a restart: the state says what was pulled, the folder holds it
    again = feed_of(files, inbox, taxii.collection(INTEL))
    assert again.taxii is not None and again.taxii.last_added == feed.taxii.last_added  # type: ignore[union-attr]
    assert again.pull() is False
    assert sorted(p.name for p in inbox.glob("bundle-*.json")) == pulled
    assert installed(again) == {"member-a", "member-c"}


def test_a_tampered_or_unsigned_envelope_on_taxii_is_rejected_with_its_reason(
    files: IntelFiles, taxii: Taxii, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = json.loads(files.signed("member-a", files.a_bundle(), "a.json").read_text())
    taxii.smuggle(tampered(env), "bundle--1")
    unsigned = {k: v for k, v in env.items() if k != "signature"}
    taxii.smuggle(unsigned, "bundle--2")
    inbox = tmp_path / "inbox"
    feed = feed_of(files, inbox, taxii.collection(INTEL))
    with caplog.at_level(logging.WARNING, logger="distillwatch.share"):
        assert feed.pull() is True
        assert installed(feed) == set()
    reasons = sorted(r.split(":")[0] for r in feed.rejected.values())
    assert reasons == ["bundle rejected (tampered)", "bundle rejected (unsigned)"]
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert any("bundle rejected (tampered)" in m for m in logged)
    assert any("bundle rejected (unsigned)" in m for m in logged)
    # the genuine one, published afterwards, is accepted (its bundle id was never accepted)
    taxii.publish("member-a", files.signed("member-a", files.a_bundle(), "a2.json"))
    assert feed.pull() is True and installed(feed) == {"member-a"}


def test_a_failing_server_is_logged_and_the_intel_kept(
    files: IntelFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files.signed("member-a", files.a_bundle(), "a.json", folder=inbox)
    feed = feed_of(files, inbox, dead_url())
    assert installed(feed) == {"member-a"}
    with caplog.at_level(logging.WARNING, logger="distillwatch.share"):
        assert feed.pull() is False
    assert any("TAXII pull failed" in r.getMessage() for r in caplog.records)
    assert installed(feed) == {"member-a"} and not (inbox / TAXII_STATE).exists()
    # a server that accepts the connection and never answers: the timeout ends the pull
    with silent_server() as url:
        slow = feed_of(files, inbox, url, timeout_s=0.5)
        start = time.monotonic()
        assert slow.pull() is False
        assert time.monotonic() - start < 5


def test_a_bad_state_file_is_one_line(files: IntelFiles, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / TAXII_STATE).write_text("[")
    with pytest.raises(IntelError, match="not a pull state file"):
        feed_of(files, inbox, dead_url())
    out = tmp_path / "out"
    out.mkdir()
    (out / STATE_NAME).write_text('{"format": "something else"}')
    with pytest.raises(IntelError, match="not a sightings state file"):
        SightingsOutbox.open(out, member="member-b", key=files.key_file("member-b"))


# -- the outbox ---------------------------------------------------------------------------


def ref(iid: str, member: str = "member-a") -> IndicatorRef:
    return IndicatorRef(iid, member, "card", 100, 0.0, None, None)


A1 = "indicator--11111111-1111-4111-8111-111111111111"
A2 = "indicator--22222222-2222-4222-8222-222222222222"
T0 = 1_700_000_000.0


def envelopes(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("sightings-*.json"))]


def counts(env: dict[str, Any]) -> dict[str, tuple[int, str, str]]:
    return {
        o["sighting_of_ref"]: (o["count"], o["first_seen"], o["last_seen"])
        for o in env["bundle"]["objects"]
    }


def run(outbox: SightingsOutbox, now: float) -> bool:
    work = outbox.take(now)
    if work is None:
        return False
    work()
    return True


def test_each_report_holds_only_the_new_matches(files: IntelFiles, tmp_path: Path) -> None:
    out = tmp_path / "out"
    key = files.key_file("member-b")
    box = SightingsOutbox.open(out, member="member-b", key=key)
    assert box.take(T0) is None  # nothing matched yet
    box.saw("acct-1", {A1: ref(A1)}, T0 + 10)
    box.saw("acct-2", {A1: ref(A1)}, T0 + 20)
    box.saw("acct-1", {A1: ref(A1)}, T0 + 30)  # nothing new for acct-1
    assert run(box, T0 + 100)
    (first,) = envelopes(out)
    assert first["signer"] == "member-b"
    assert {k: v[0] for k, v in counts(first).items()} == {A1: 2}
    assert box.take(T0 + 200) is None  # nothing new: nothing sent again

    box.saw("acct-1", {A1: ref(A1), A2: ref(A2)}, T0 + 300)  # acct-1 now matches A2 too
    box.saw("acct-3", {A1: ref(A1)}, T0 + 400)
    time.sleep(0.001)  # a distinct file name
    assert run(box, T0 + 500)
    second = envelopes(out)[1]
    got = counts(second)
    assert {k: v[0] for k, v in got.items()} == {A1: 1, A2: 1}
    assert got[A1][1].startswith("2023-11-14T22:20:00")  # acct-3's match, not acct-1's
    assert first["bundle"]["id"] != second["bundle"]["id"]

    # a restart replays the log: the same matches again, then one more account
    box = SightingsOutbox.open(out, member="member-b", key=key)
    for aid, refs, t in [
        ("acct-1", {A1: ref(A1), A2: ref(A2)}, T0 + 10),
        ("acct-2", {A1: ref(A1)}, T0 + 20),
        ("acct-3", {A1: ref(A1)}, T0 + 400),
    ]:
        box.saw(aid, refs, t)
    assert box.take(T0 + 600) is None  # all reported before the restart
    box.saw("acct-4", {A2: ref(A2)}, T0 + 700)
    assert run(box, T0 + 800)
    assert {k: v[0] for k, v in counts(envelopes(out)[2]).items()} == {A2: 1}
    state = (out / STATE_NAME).read_text()
    assert "acct-" not in state  # counts per indicator, no account


def test_sightings_are_pushed_and_queued_while_taxii_is_down(
    files: IntelFiles, taxii: Taxii, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    down = dead_url()
    now = files.now.timestamp()  # the server checks the envelopes' times

    def push_down(env: dict[str, Any]) -> int:
        return push_envelope(down, "member-b", PASSWORDS["member-b"], env, timeout_s=2)

    box = SightingsOutbox.open(
        out, member="member-b", key=files.key_file("member-b"), push=push_down
    )
    box.saw("acct-1", {A1: ref(A1)}, now)
    assert run(box, now + 10)
    (name,) = [p.name for p in out.glob("sightings-*.json")]
    assert box.unpushed == [name]
    assert json.loads((out / STATE_NAME).read_text())["unpushed"] == [name]

    # a restart while it is down: still queued; the server is back: pushed with no new match
    url = taxii.collection(SIGHTINGS)

    def push_up(env: dict[str, Any]) -> int:
        return push_envelope(url, "member-b", PASSWORDS["member-b"], env)

    box = SightingsOutbox.open(out, member="member-b", key=files.key_file("member-b"), push=push_up)
    assert box.unpushed == [name]
    assert run(box, now + 20)
    assert box.unpushed == [] and json.loads((out / STATE_NAME).read_text())["unpushed"] == []
    (bundle,) = taxii.sightings_at("member-a", tmp_path / "at-a")
    assert {o["sighting_of_ref"]: o["count"] for o in bundle["objects"]} == {A1: 1}
    assert box.take(now + 30) is None

    # pushed before but not recorded (a crash in between): the server's ``replayed`` is done
    box.unpushed.append(name)
    assert run(box, now + 40) and box.unpushed == []


def test_a_refused_push_is_not_retried(files: IntelFiles, taxii: Taxii, tmp_path: Path) -> None:
    url = taxii.collection(SIGHTINGS)
    out = tmp_path / "out"
    out.mkdir()
    key = files.keys["member-b"]
    old = files.now - timedelta(days=9)
    body = {"type": "bundle", "id": "bundle--3", "objects": []}
    stale = sign(body, "member-b", key, signed_at=old, expires=old + timedelta(days=7))
    (out / "old.json").write_text(json.dumps(stale))
    with pytest.raises(IntelError, match="expired"):
        push_envelope(url, "member-b", PASSWORDS["member-b"], stale)
    box = SightingsOutbox.open(
        out,
        member="member-b",
        key=files.key_file("member-b"),
        push=lambda env: push_envelope(url, "member-b", PASSWORDS["member-b"], env),
    )
    box.unpushed.append("old.json")
    assert run(box, T0) and box.unpushed == []


def test_an_unusable_signing_key_is_one_line(files: IntelFiles, tmp_path: Path) -> None:
    with pytest.raises(IntelError, match="cannot read"):
        SightingsOutbox.open(tmp_path / "out", member="member-b", key=tmp_path / "missing.key")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(IntelError, match="not an unencrypted PEM private key"):
        SightingsOutbox.open(tmp_path / "out", member="member-b", key=tmp_path / "bad.key")
