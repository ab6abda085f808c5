"""``distillwatch scan --intel``: received bundles become evidence, campaigns and actions in the
replay, under the trust policy's ceiling; bad bundles are rejected with their reason."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from distillwatch.attribute.factory import build_engine
from distillwatch.cli.main import app
from distillwatch.clock import format_rfc3339
from distillwatch.detect import Engine
from distillwatch.policy import load_policy
from distillwatch.records import Action, Exchange
from distillwatch.share.files import load_intel, receive
from distillwatch.share.match import CEILING_RULE, SIGNAL_ID
from distillwatch.share.sign import verify
from distillwatch.share.trust import load_members
from tests.share.intel_world import IntelFiles, intel_files, receiver_log

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> IntelFiles:
    return intel_files(tmp_path / "intel")


def scan(
    tmp: Path, files: IntelFiles, *args: str, out: str = "v.jsonl"
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Scan the receiver's log with ``args``; the result and the verdicts by account."""
    log, accounts, _ = receiver_log(tmp / "r", files.now)
    path = tmp / out
    r = runner.invoke(
        app, ["scan", str(log), "--accounts", str(accounts), "-o", str(path), "-q", *args]
    )
    verdicts = {}
    if path.exists():
        for line in path.read_text().splitlines():
            v = json.loads(line)
            verdicts[v["account_id"]] = v
    return r, verdicts


def intel_args(f: IntelFiles, *bundles: Path) -> list[str]:
    out = []
    for b in bundles:
        out += ["--intel", str(b)]
    return [*out, "--members", str(f.members), "--group-secret", str(f.secret)]


def test_matches_become_evidence_a_campaign_and_an_action(
    tmp_path: Path, files: IntelFiles
) -> None:
    a = files.signed("member-a", files.a_bundle(), "a.json")
    c = files.signed("member-c", files.c_bundle(), "c.json")
    sightings = tmp_path / "sightings.json"
    r, got = scan(
        tmp_path,
        files,
        *intel_args(files, a, c),
        "--sightings",
        str(sightings),
        "--member",
        "member-b",
        "--key",
        str(files.key_file("member-b")),
    )
    assert r.exit_code == 0, r.output
    assert "2 bundle(s) accepted (member-a, member-c), 0 rejected" in r.output
    assert "intel: 2 account(s) matched received indicators (1 corroborated)" in r.output
    _, base = scan(tmp_path, files, out="base.jsonl")  # the same log without intel
    x = got["x-corr"]
    assert x["evidence"]["signals"][SIGNAL_ID] == 2.0  # its card, from each member
    assert x["reasons"][0] == (
        "matches 1 indicator from member-a (confidence 100), "
        "1 indicator from member-c (confidence 100)"
    )
    assert x["campaign_id"].startswith("campaign--")  # the shared campaign, corroborated
    assert Action(x["action"]).enforces and x["first_action_ts"] is not None
    assert base["x-corr"]["action"] == "allow" and base["x-corr"]["campaign_id"] is None
    for legit in ("legit-1", "legit-2"):
        assert got[legit] == base[legit]
        assert SIGNAL_ID not in got[legit]["evidence"]["signals"]
    # the sightings go back to the publishers: signed by us, one per indicator matched
    env = json.loads(sightings.read_text())
    policy = load_members(files.members)
    me = {"member-b": _signer(files.keys["member-b"])}
    _, body = verify(env, me, now=files.now + timedelta(minutes=1))
    assert policy.group == "scan-group"
    objs = body["objects"]
    assert {o["type"] for o in objs} == {"sighting"}
    assert sorted(o["count"] for o in objs) == [1, 1, 1]  # x's card from a and c, y's from a


def _signer(key: Ed25519PrivateKey) -> Any:
    from distillwatch.share.sign import Signer

    return Signer("member-b", key.public_key())


def test_one_member_alone_stays_at_monitor(tmp_path: Path, files: IntelFiles) -> None:
    a = files.signed("member-a", files.a_bundle(), "a.json")
    r, got = scan(tmp_path, files, *intel_args(files, a))
    assert r.exit_code == 0, r.output
    y = got["y-solo"]
    assert "uncorroborated: monitor only" in y["reasons"][0]
    # intel lifted the score past the throttle threshold, the ceiling held the action
    assert y["score"] >= load_policy().thresholds()["throttle"]
    assert y["action"] == "monitor" and y["evidence"]["policy"]["rule"] == CEILING_RULE
    assert y["first_action_ts"] is None and y["campaign_id"] is None
    # x matches member-a only now: the same
    assert got["x-corr"]["action"] == "monitor" and got["x-corr"]["campaign_id"] is None


def _replay(files: IntelFiles, exchanges: list[Exchange], ceiling: bool) -> Engine:
    received = load_intel(
        [files.signed("member-a", files.a_bundle(), "a2.json")],
        members=files.members,
        group_secret=files.secret,
        now=files.now,
    )
    from distillwatch.log import read_accounts

    accounts = read_accounts(files.folder.parent / "r" / "accounts.jsonl")
    engine = build_engine(load_policy(), accounts)
    received.matcher(accounts).attach(engine, ceiling=ceiling)
    for e in exchanges:
        engine.observe(e)
    return engine


def test_the_ceiling_is_what_holds_it(tmp_path: Path, files: IntelFiles) -> None:
    """Without the ceiling the same match acts: the test above can fail."""
    _, _, exchanges = receiver_log(tmp_path / "r", files.now)
    capped = {v.account_id: v for v in _replay(files, exchanges, ceiling=True).verdicts()}
    loose = {v.account_id: v for v in _replay(files, exchanges, ceiling=False).verdicts()}
    assert loose["y-solo"].action.enforces
    assert capped["y-solo"].action is Action.MONITOR
    assert capped["y-solo"].score == loose["y-solo"].score


def test_the_ceiling_keeps_what_our_own_detection_decides(
    tmp_path: Path, files: IntelFiles
) -> None:
    """Intel never lowers an action: with thresholds our own score reaches, the account is
    throttled by its own score; intel's extra (to protect) is what is cut."""
    policy = tmp_path / "low.yaml"
    policy.write_text(
        "name: low\nversion: 1\nmin_exchanges: 20\n"
        "thresholds: {monitor: 0.001, throttle: 0.005, protect: 0.5, block: 0.99}\n"
    )
    a = files.signed("member-a", files.a_bundle(), "a.json")
    r, got = scan(tmp_path, files, *intel_args(files, a), "--policy", str(policy))
    assert r.exit_code == 0, r.output
    _, base = scan(tmp_path, files, "--policy", str(policy), out="base.jsonl")
    assert base["y-solo"]["action"] == "throttle"
    assert got["y-solo"]["score"] >= 0.5  # protect, by intel alone
    assert got["y-solo"]["action"] == "throttle"
    assert got["y-solo"]["evidence"]["policy"]["rule"] == "thresholds.throttle"


def _tampered(files: IntelFiles) -> Path:
    path = files.signed("member-c", files.c_bundle(), "tampered.json")
    env = json.loads(path.read_text())
    for o in env["bundle"]["objects"]:
        if o["type"] == "indicator":
            o["confidence"] = 100 if o["confidence"] != 100 else 99
    path.write_text(json.dumps(env))
    return path


def bad_bundles(files: IntelFiles) -> dict[str, Path]:
    return {
        "tampered": _tampered(files),
        "expired": files.signed(
            "member-c", files.c_bundle(), "expired.json", expires=timedelta(seconds=-1)
        ),
        # a key that is not member-c's, however it signs
        "unknown-signer": files.signed(
            "member-c", files.c_bundle(), "forged.json", key=Ed25519PrivateKey.generate()
        ),
    }


def test_bad_bundles_are_rejected_with_the_reason_and_change_nothing(
    tmp_path: Path, files: IntelFiles
) -> None:
    a = files.signed("member-a", files.a_bundle(), "a.json")
    bad = bad_bundles(files)
    r, got = scan(tmp_path, files, *intel_args(files, a, *bad.values()))
    assert r.exit_code == 0, r.output
    for reason, path in bad.items():
        assert f"intel: {path}: bundle rejected ({reason})" in " ".join(r.output.split())
    assert "1 bundle(s) accepted (member-a), 3 rejected" in r.output
    _, only_a = scan(tmp_path, files, *intel_args(files, a), out="only-a.jsonl")
    assert got == only_a  # member-c's forged, tampered and expired claims changed nothing
    assert got["x-corr"]["action"] == "monitor"  # not corroborated by the bad bundles


def test_no_valid_bundle_is_a_one_line_error(tmp_path: Path, files: IntelFiles) -> None:
    bad = bad_bundles(files)
    r, _ = scan(tmp_path, files, *intel_args(files, *bad.values()))
    assert r.exit_code == 2
    text = r.output.strip()
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith("error: no valid intel bundle (")
    for reason in bad:
        assert f"({reason})" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--intel", "a.json"], "--intel needs --members and --group-secret"),
        (["--members", "m.yaml"], "go with --intel"),
        (["--intel", "a.json", "--engine", "spark"], "--intel needs --engine embedded"),
        (["SIGHTINGS"], "--sightings needs --member and --key"),
        (["MISSING"], "cannot read"),
        (["BADKEY"], "nope.key"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, files: IntelFiles, args: list[str], message: str
) -> None:
    a = files.signed("member-a", files.a_bundle(), "a.json")
    if args == ["SIGHTINGS"]:
        args = [*intel_args(files, a), "--sightings", str(tmp_path / "s.json")]
    elif args == ["MISSING"]:
        args = intel_args(files, tmp_path / "nope.json")
    elif args == ["BADKEY"]:
        sign_with = ["--member", "member-b", "--key", str(tmp_path / "nope.key")]
        args = [*intel_args(files, a), "--sightings", str(tmp_path / "s.json"), *sign_with]
    r, _ = scan(tmp_path, files, *args)
    assert r.exit_code == 2, r.output
    text = r.output.strip()
    assert "\n" not in text and "Traceback" not in text
    assert message in text


def revoking(files: IntelFiles, stix: dict[str, Any]) -> dict[str, Any]:
    """A later bundle of the same member revoking every indicator of ``stix``."""
    out = copy.deepcopy(stix)
    out["id"] = f"bundle--{uuid.uuid4()}"
    later = format_rfc3339(files.now + timedelta(minutes=1))
    for o in out["objects"]:
        if o["type"] == "indicator":
            o["revoked"] = True
            o["modified"] = later
    return out


def test_a_revoked_indicator_stops_matching(tmp_path: Path, files: IntelFiles) -> None:
    stix = files.a_bundle()
    a = files.signed("member-a", stix, "a.json")
    gone = files.signed("member-a", revoking(files, stix), "revoked.json")
    r, got = scan(tmp_path, files, *intel_args(files, a, gone))
    assert r.exit_code == 0, r.output
    assert "2 bundle(s) accepted" in r.output
    assert all(SIGNAL_ID not in v["evidence"]["signals"] for v in got.values())
    # and in a matcher that matched before the revocation arrived (the gateway's case)
    policy = load_members(files.members)
    secret = bytes.fromhex(files.secret.read_text().strip())
    first = receive([a], policy=policy, group_secret=secret, now=files.now)
    both = receive([a, gone], policy=policy, group_secret=secret, now=files.now)
    _, accounts_path, exchanges = receiver_log(tmp_path / "r2", files.now)
    from distillwatch.log import read_accounts

    matcher = first.matcher(read_accounts(accounts_path))
    for e in exchanges:
        matcher.observe(e, e.ts.timestamp())
    t = exchanges[-1].ts.timestamp()
    assert matcher.matched("y-solo", t)
    matcher.use_index(both.index())
    assert matcher.matched("y-solo", t) == [] and matcher.evidence("y-solo", t) is None
