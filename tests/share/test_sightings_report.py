"""``distillwatch intel sightings``: the publisher reads back what members sighted of its
indicators, verified as received intel is, each sighting counted once."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.clock import format_rfc3339
from distillwatch.share.index import IndicatorRef
from distillwatch.share.publishers import PUBLISHER_REF
from distillwatch.share.sightings import SightingsOutbox
from distillwatch.share.sign import identity_id, public_b64, sign
from distillwatch.share.taxii_client import push_envelope
from tests.share.intel_world import GROUP, IntelFiles, intel_files
from tests.share.taxii_world import PASSWORDS, SIGHTINGS_A, Taxii, taxii_server

A1 = "indicator--a1a1a1a1-1111-4111-8111-111111111111"
A2 = "indicator--a2a2a2a2-2222-4222-8222-222222222222"
C1 = "indicator--c1c1c1c1-3333-4333-8333-333333333333"
PUBLISHER = {A1: "member-a", A2: "member-a", C1: "member-c"}
runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> IntelFiles:
    return intel_files(tmp_path / "intel")


def refs(*iids: str) -> dict[str, IndicatorRef]:
    return {i: IndicatorRef(i, PUBLISHER[i], "card", 100, 0.0, None, None) for i in iids}


def publisher_members(files: IntelFiles, tmp: Path) -> Path:
    """member-a's members file: it accepts sightings from b and c."""
    path = tmp / "a-members.yaml"
    lines = [f"group: {GROUP}", "members:"]
    for m in ("member-b", "member-c"):
        lines += [f"  {m}:", f"    public_key: {public_b64(files.keys[m].public_key())}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Senders:
    """Two members' gateway outboxes (b and c) reporting matches of a's and c's indicators."""

    def __init__(self, files: IntelFiles, tmp: Path) -> None:
        self.files = files
        self.b = tmp / "from-b"
        self.c = tmp / "from-c"
        self.now = files.now.timestamp()
        self.box_b = self.box("member-b", self.b)
        self.box_c = self.box("member-c", self.c)

    def box(self, member: str, folder: Path, **kw: Any) -> SightingsOutbox:
        key = self.files.key_file(member)
        return SightingsOutbox.open(folder, member=member, key=key, **kw)

    def report(self, box: SightingsOutbox, dt: float) -> None:
        work = box.take(self.now + dt)
        assert work is not None
        work()

    def run(self) -> None:
        """b: two accounts match A1, then one more A1 and one A2 (two reports); one matches
        c's C1. c: one account matches A1."""
        self.box_b.saw("b-acct-1", refs(A1, C1), self.now - 300)
        self.box_b.saw("b-acct-2", refs(A1), self.now - 200)
        self.report(self.box_b, -100)
        self.box_b.saw("b-acct-3", refs(A1, A2), self.now - 50)
        self.report(self.box_b, -10)
        self.box_c.saw("c-acct-1", refs(A1), self.now - 400)
        self.report(self.box_c, -5)


@pytest.fixture
def senders(files: IntelFiles, tmp_path: Path) -> Senders:
    s = Senders(files, tmp_path)
    s.run()
    return s


def report(files: IntelFiles, tmp: Path, *args: str, ok: bool = True) -> Any:
    r = runner.invoke(
        app,
        [
            "intel", "sightings", *args, "--members", str(publisher_members(files, tmp)),
            "--member", "member-a", "--now", (files.now + timedelta(minutes=1)).isoformat(),
            "--json",
        ],
    )  # fmt: skip
    assert "Traceback" not in r.output
    if ok:
        assert r.exit_code == 0, r.output
    return r


def rows(r: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    data = json.loads(r.stdout)
    return data, {row["indicator_id"]: row for row in data["indicators"]}


def test_the_deltas_of_two_members_add_up(
    files: IntelFiles, senders: Senders, tmp_path: Path
) -> None:
    r = report(files, tmp_path, str(senders.b), str(senders.c))
    data, got = rows(r)
    assert data["identity"] == identity_id("member-a")
    assert data["envelopes"] == {"accepted": 4, "rejected": []}  # b: 2 for a, 1 for c; c: 1
    assert set(got) == {A1, A2}  # c's indicator is not ours
    a1 = got[A1]
    assert (a1["members"], a1["accounts"]) == (2, 4)
    assert a1["by_member"] == {"member-b": 3, "member-c": 1}  # 2 then 1 more, from b
    assert a1["sightings"] == 3
    assert a1["first_seen"] == format_rfc3339(files.now - timedelta(seconds=400))  # c's
    assert a1["last_seen"] == format_rfc3339(files.now - timedelta(seconds=50))  # b's third
    assert (got[A2]["members"], got[A2]["accounts"], got[A2]["by_member"]) == (
        1, 1, {"member-b": 1})  # fmt: skip
    assert data["sightings"] == {
        "counted": 4, "duplicates": 0, "other_publishers": 1, "malformed": 0}  # fmt: skip
    assert data["indicators"][0]["indicator_id"] == A1  # most accounts first
    # the table: the same figures
    r = runner.invoke(
        app,
        ["intel", "sightings", str(senders.b), str(senders.c),
         "--members", str(publisher_members(files, tmp_path)), "--member", "member-a",
         "--now", (files.now + timedelta(minutes=1)).isoformat()],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "Sightings of member-a's indicators" in text
    assert "member-b: 3, member-c: 1" in text
    assert "4 envelope(s) accepted, 0 rejected; 4 sighting(s) of 2 of our indicator(s)" in text


def test_a_duplicate_envelope_is_counted_once(
    files: IntelFiles, senders: Senders, tmp_path: Path
) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    for p in senders.b.glob("sightings-*.json"):
        shutil.copy(p, copies / f"again-{p.name}")
    r = report(files, tmp_path, str(senders.b), str(senders.c), str(copies), str(senders.b))
    data, got = rows(r)
    assert data["envelopes"]["accepted"] == 7  # a folder given twice is read once
    assert got[A1]["by_member"] == {"member-b": 3, "member-c": 1}
    assert got[A1]["accounts"] == 4 and got[A2]["accounts"] == 1
    assert data["sightings"]["duplicates"] == 3 and data["sightings"]["counted"] == 4


def test_only_our_indicators_count(files: IntelFiles, tmp_path: Path) -> None:
    """One envelope (one replay's, ``scan --sightings``) with sightings of several
    publishers' indicators, and one without the publisher property: only ours count."""
    me = identity_id("member-b")
    objs = [
        {"type": "sighting", "spec_version": "2.1",
         "id": f"sighting--5e5e5e5e-0000-4000-8000-00000000000{n}",
         "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
         "created_by_ref": me, "sighting_of_ref": iid, "count": count, **extra}
        for n, (iid, count, extra) in enumerate([
            (A1, 5, {PUBLISHER_REF: identity_id("member-a")}),
            (C1, 7, {PUBLISHER_REF: identity_id("member-c")}),
            (A2, 9, {}),  # not attributed: not counted
        ])
    ]  # fmt: skip
    body = {"type": "bundle", "id": "bundle--5e5e5e5e-0000-4000-8000-000000000000", "objects": objs}
    env = sign(body, "member-b", files.keys["member-b"], signed_at=files.now,
               expires=files.now + timedelta(days=7))  # fmt: skip
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(env))
    data, got = rows(report(files, tmp_path, str(path)))
    assert list(got) == [A1] and got[A1]["accounts"] == 5
    assert data["sightings"]["other_publishers"] == 2


def _envelope(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(path.read_text())
    return out


def test_tampered_unknown_and_expired_envelopes_are_rejected(
    files: IntelFiles, senders: Senders, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    first = sorted(senders.b.glob("sightings-*-member-a.json"))[0]
    env = _envelope(first)
    forged = copy.deepcopy(env)
    forged["bundle"]["objects"][0]["count"] = 1000  # inflated after signing
    forged["bundle"]["id"] = "bundle--f0f0f0f0-0000-4000-8000-000000000000"
    (bad / "tampered.json").write_text(json.dumps(forged))
    stranger = Ed25519PrivateKey.generate()  # signs as member-b with another key
    week = files.now + timedelta(days=7)
    posing = sign(env["bundle"], "member-b", stranger, signed_at=files.now, expires=week)
    (bad / "stranger.json").write_text(json.dumps(posing))
    (bad / "unsigned.json").write_text(json.dumps(env["bundle"]))
    r = report(files, tmp_path, str(senders.b), str(senders.c), str(bad), ok=False)
    assert r.exit_code == 1
    data, got = rows(r)
    assert got[A1]["by_member"] == {"member-b": 3, "member-c": 1}  # the forgery changed nothing
    reasons = {
        Path(x["file"]).name: x["reason"].split(":")[0] for x in data["envelopes"]["rejected"]
    }
    assert reasons == {
        "tampered.json": "bundle rejected (tampered)",
        "stranger.json": "bundle rejected (unknown-signer)",
        "unsigned.json": "bundle rejected (unsigned)",
    }
    for name in reasons:  # one line each, on stderr beside the JSON on stdout
        assert sum(name in line for line in r.stderr.splitlines()) == 1
    # eight days later every one of them has expired
    r = runner.invoke(
        app,
        ["intel", "sightings", str(senders.b), "--members", str(publisher_members(files, tmp_path)),
         "--member", "member-a", "--now", (files.now + timedelta(days=8)).isoformat()],
    )  # fmt: skip
    assert r.exit_code == 1 and "bundle rejected (expired)" in r.output
    assert "0 envelope(s) accepted, 3 rejected" in " ".join(r.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give sightings files or folders, or --collection URL"),
        (["nowhere"], "nowhere: no such file or folder"),
        (["--member", "../x"], "invalid sharing-group name '../x'"),
        (["--collection", "http://127.0.0.1:9/x/"], "--collection needs --password"),
        (["broken"], "not JSON"),
        (["--now", "yesterday", "."], "--now must be an RFC 3339 time"),
    ],
)
def test_bad_input_is_one_line(
    files: IntelFiles,
    tmp_path: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISTILLWATCH_TAXII_PASSWORD", raising=False)
    (tmp_path / "broken").write_text("{")
    member = [] if "--member" in args else ["--member", "member-a"]
    r = runner.invoke(
        app,
        ["intel", "sightings", *args, "--members", str(publisher_members(files, tmp_path)),
         *member],
    )  # fmt: skip
    text = " ".join(r.output.split())
    assert "Traceback" not in text
    if message == "not JSON":  # a file that is not an envelope: rejected with its reason
        assert r.exit_code == 1 and "bundle rejected (malformed)" in text and message in text
        return
    assert r.exit_code == 2, text
    assert message in text
    r = runner.invoke(
        app, ["intel", "sightings", ".", "--members", "missing.yaml", "--member", "member-a"]
    )
    assert r.exit_code == 2 and "cannot read missing.yaml" in " ".join(r.output.split())


@pytest.fixture
def taxii(files: IntelFiles, tmp_path: Path) -> Iterator[Taxii]:
    with taxii_server(files, tmp_path / "taxii") as t:
        yield t


def test_pulled_from_the_publishers_collection(
    files: IntelFiles, taxii: Taxii, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = taxii.collection(SIGHTINGS_A)

    def push(env: dict[str, Any]) -> int:
        return push_envelope(url, "member-b", PASSWORDS["member-b"], env, timeout_s=5)

    s = Senders(files, tmp_path)
    s.box_b = s.box("member-b", tmp_path / "b-pushed", pushes={"member-a": push})
    s.run()
    assert s.box_b.unpushed == []
    monkeypatch.setenv("DISTILLWATCH_TAXII_PASSWORD", PASSWORDS["member-a"])
    pulled, state = tmp_path / "pulled", tmp_path / "pull.state"
    args = ["--collection", url, "--out", str(pulled), "--state", str(state)]
    data, got = rows(report(files, tmp_path, *args))
    assert got[A1]["by_member"] == {"member-b": 3} and got[A2]["by_member"] == {"member-b": 1}
    assert data["envelopes"]["accepted"] == 2
    # again: nothing new on the collection, the folder's envelopes counted once more (not twice)
    r = report(files, tmp_path, *args, str(s.c))
    assert "0 envelope(s) pulled" in r.stderr
    data, got = rows(r)
    assert got[A1]["by_member"] == {"member-b": 3, "member-c": 1}
