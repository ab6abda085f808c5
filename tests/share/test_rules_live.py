"""Received behaviour rules match live: at the engine's decision points, on the account's signal
values as of then, under the same trust policy, ceiling, expiry, revocation and sightings as
keyed indicators (``IntelMatcher.observe_values``, the engine's ``ValuesLinker`` hook)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from distillwatch.attribute.factory import build_engine
from distillwatch.cli.main import app
from distillwatch.detect import Engine
from distillwatch.log import read_accounts
from distillwatch.policy import load_policy
from distillwatch.records import Action, Exchange, SignalValue
from distillwatch.share.files import load_intel
from distillwatch.share.index import IntelIndex
from distillwatch.share.match import CEILING_RULE, SIGNAL_ID, IntelMatcher
from distillwatch.share.rules import RuleTable
from distillwatch.share.sign import verify
from distillwatch.share.trust import TrustPolicy, load_members
from tests.share.intel_world import (
    ATTACKER,
    GROUP,
    RULE_MIN_EXCHANGES,
    SECRET_HEX,
    IntelFiles,
    intel_files,
    receiver_log,
)
from tests.share.test_scan_intel import _signer, intel_args, revoking

runner = CliRunner()
LEGIT = ("legit-1", "legit-2")
RULE_REASON = "matches 1 behaviour rule from member-a (confidence 50)"


@pytest.fixture
def files(tmp_path: Path) -> IntelFiles:
    return intel_files(tmp_path / "intel")


def scan(tmp: Path, files: IntelFiles, *args: str, out: str) -> dict[str, dict[str, Any]]:
    """Scan the receiver's log, the attacker included; the verdicts by account."""
    log, accounts, _ = receiver_log(tmp / "r", files.now, attacker=True)
    path = tmp / out
    r = runner.invoke(
        app, ["scan", str(log), "--accounts", str(accounts), "-o", str(path), "-q", *args]
    )
    assert r.exit_code == 0, r.output
    return {v["account_id"]: v for v in map(json.loads, path.read_text().splitlines())}


def only_rule(files: IntelFiles, stix: dict[str, Any], **rule: Any) -> dict[str, Any]:
    """``stix`` with a rule (``with_rule``'s options) as its only indicator (nothing else can
    match anyone)."""
    out = files.with_rule(stix, **rule)
    (rule_id,) = files.rule_ids(out)
    out["objects"] = [
        o
        for o in out["objects"]
        if o["type"] not in ("indicator", "relationship")
        or o["id"] == rule_id
        or o.get("source_ref") == rule_id
    ]
    return out


def test_a_trusted_members_rule_matches_the_attacker_live_in_scan(
    tmp_path: Path, files: IntelFiles
) -> None:
    stix = files.with_rule(files.a_bundle())
    (rule_id,) = files.rule_ids(stix)
    a = files.signed("member-a", stix, "a.json")
    sightings = tmp_path / "s.json"
    sign_args = ["--member", "member-b", "--key", str(files.key_file("member-b"))]
    got = scan(
        tmp_path,
        files,
        *intel_args(files, a),
        "--sightings",
        str(sightings),
        *sign_args,
        out="v.jsonl",
    )
    base = scan(tmp_path, files, out="base.jsonl")
    z = got[ATTACKER]
    assert z["evidence"]["signals"][SIGNAL_ID] == 1.0
    assert z["reasons"][0] == f"{RULE_REASON}; uncorroborated: monitor only"
    assert z["campaign_id"] == base[ATTACKER]["campaign_id"]  # one member names no campaign
    assert z["score"] > base[ATTACKER]["score"]
    # the rule alone lifted the score past throttle; the ceiling held the action at monitor
    assert z["score"] >= load_policy().thresholds()["throttle"]
    assert z["action"] == "monitor" and z["evidence"]["policy"]["rule"] == CEILING_RULE
    assert z["first_action_ts"] is None
    for legit in LEGIT:  # their address churn is 0.03: the rule leaves them alone
        assert got[legit] == base[legit]
    # the sightings count the rule's match as they count a card's
    me = {"member-b": _signer(files.keys["member-b"])}
    _, body = verify(json.loads(sightings.read_text()), me, now=files.now)
    counts = {o["sighting_of_ref"]: o["count"] for o in body["objects"]}
    assert counts[rule_id] == 1
    assert len(counts) == 3  # x's and y's cards, and the rule


def test_rules_of_two_members_corroborate_under_the_same_trust_policy(tmp_path: Path) -> None:
    """Rules are credited ``kinds.rule`` (0.5 by default: never enough for a member to
    support a match alone); a policy crediting them fully lets two members' rules act, and
    the match names their shared campaign, as for two members' cards."""
    files = intel_files(
        tmp_path / "intel", max_evidence=9.0, solo_evidence=9.0, local_min_score=None,
        kinds="{rule: 1.0}",
    )  # fmt: skip
    a = files.signed("member-a", only_rule(files, files.a_bundle()), "a.json")
    c = files.signed("member-c", only_rule(files, files.c_bundle()), "c.json")
    both = scan(tmp_path, files, *intel_args(files, a, c), out="both.jsonl")
    solo = scan(tmp_path, files, *intel_args(files, a), out="solo.jsonl")
    z = both[ATTACKER]
    assert z["reasons"][0] == (
        "matches 1 behaviour rule from member-a (confidence 100), "
        "1 behaviour rule from member-c (confidence 100)"
    )
    assert Action(z["action"]).enforces and z["first_action_ts"] is not None
    assert z["campaign_id"].startswith("campaign--")
    assert solo[ATTACKER]["action"] == "monitor" and solo[ATTACKER]["campaign_id"] is None
    for legit in LEGIT:
        assert SIGNAL_ID not in both[legit]["evidence"]["signals"]


def test_a_revoked_rule_stops_matching(tmp_path: Path, files: IntelFiles) -> None:
    stix = files.with_rule(files.a_bundle())
    a = files.signed("member-a", stix, "a.json")
    gone = files.signed("member-a", revoking(files, stix), "revoked.json")
    got = scan(tmp_path, files, *intel_args(files, a, gone), out="v.jsonl")
    assert SIGNAL_ID not in got[ATTACKER]["evidence"]["signals"]
    kept = scan(tmp_path, files, *intel_args(files, a), out="kept.jsonl")
    assert SIGNAL_ID in kept[ATTACKER]["evidence"]["signals"]


def _engines(
    files: IntelFiles, tmp: Path, stix: dict[str, Any], *, at: timedelta
) -> tuple[Engine, Engine, IntelMatcher, list[Exchange]]:
    """An engine with ``stix`` (indexed ``at`` after the log starts) and one without."""
    _, accounts_path, exchanges = receiver_log(tmp / "r", files.now, attacker=True)
    accounts = read_accounts(accounts_path)
    index = IntelIndex(GROUP, bytes.fromhex(SECRET_HEX))
    index.add_bundle("member-a", stix, now=exchanges[0].ts + at)
    policy = load_members(files.members)
    matcher = IntelMatcher(index, policy, accounts)
    with_intel = build_engine(load_policy(), accounts)
    matcher.attach(with_intel, ceiling=True)
    return with_intel, build_engine(load_policy(), accounts), matcher, exchanges


def _scores(
    with_intel: Engine, without: Engine, exchanges: list[Exchange]
) -> list[tuple[int, float, float]]:
    """The attacker's decision scores after each of its exchanges, with and without intel."""
    out = []
    for e in exchanges:
        d, base = with_intel.observe(e), without.observe(e)
        if e.account_id == ATTACKER:
            out.append((with_intel.states[ATTACKER].exchanges, d.score, base.score))
    return out


def test_rules_are_evaluated_at_each_decision_point_on_the_values_as_of_then(
    tmp_path: Path, files: IntelFiles
) -> None:
    """Causal: nothing before the rule's ``min_exchanges``; from there, every decision; and a
    rule that expires mid-log stops counting at the first decision point after it."""
    _, _, _, exchanges = _engines(files, tmp_path, {"objects": []}, at=timedelta(0))
    mine = [e for e in exchanges if e.account_id == ATTACKER]
    expiry = mine[19].ts + timedelta(seconds=1)  # after its 20th exchange, before its 21st
    stix = only_rule(files, files.a_bundle(), valid_until=expiry)
    with_intel, without, matcher, _ = _engines(files, tmp_path, stix, at=timedelta(0))
    scores = _scores(with_intel, without, exchanges)
    lifted = [n for n, s, base in scores if s > base]
    assert lifted == list(range(RULE_MIN_EXCHANGES, 21))
    assert all(s == base for n, s, base in scores if n not in lifted)
    t = exchanges[-1].ts.timestamp()
    assert matcher.evidence(ATTACKER, t) is None and not matcher.matched(ATTACKER, t)
    v = {v.account_id: v for v in with_intel.verdicts()}[ATTACKER]
    assert v.evidence is not None and SIGNAL_ID not in v.evidence.signals
    assert matcher.index.stats.expired == 1
    # the sightings still count the match that happened
    assert [s.count for s in matcher.sightings("member-b", files.now)] == [1]


def test_a_rule_the_values_no_longer_satisfy_stops_counting(
    tmp_path: Path, files: IntelFiles
) -> None:
    """A rule reads the values of now, not the best ever seen: once the account's request
    rate passes the rule's ``<=`` bound, the match stops adding evidence."""
    slow = only_rule(
        files,
        files.a_bundle(),
        pattern=(
            f"behaviour-rule v=1 group={GROUP} min_exchanges=1 "
            "all=network.address_churn@1>=0.8,volume.tier_rate@1<=15"
        ),
    )
    (rule,) = files.rule_ids(slow)
    with_intel, without, matcher, exchanges = _engines(files, tmp_path, slow, at=timedelta(0))
    scores = _scores(with_intel, without, exchanges)
    # churn has a value from the 5th request on; the rate (one more per request) passes 15
    # at the 16th
    lifted = [n for n, s, base in scores if s > base]
    assert lifted == list(range(5, 16))
    t = exchanges[-1].ts.timestamp()
    assert matcher.evidence(ATTACKER, t) is None
    assert [r.indicator_id for r in matcher.hits[ATTACKER].refs.values()] == [rule]


class Recorder:
    """A ``ValuesLinker`` that records what the engine shows it and adds evidence of its own."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str], int]] = []

    def observe(self, exchange: Exchange, t: float) -> None:
        pass

    def acted(self, account_id: str, action: Action, t: float) -> None:
        pass

    def evidence(self, account_id: str, now: float) -> SignalValue | None:
        return SignalValue(
            signal_id="test.echo", version=1, value=1.0, evidence=0.1, explanation="echo"
        )

    def campaign_of(self, account_id: str) -> str | None:
        return None

    def observe_values(
        self, account_id: str, values: Sequence[SignalValue], exchanges: int, now: float
    ) -> None:
        self.seen.append((account_id, [v.signal_id for v in values], exchanges))


def test_the_engine_shows_linkers_its_signal_values_never_evidence(
    tmp_path: Path, files: IntelFiles
) -> None:
    """No feedback loop: the values a linker reads hold no linker's evidence (neither the
    campaign linker's, nor intel's, nor its own); and a linker without ``observe_values``
    (the campaign linker) is not asked."""
    _, accounts_path, exchanges = receiver_log(tmp_path / "r", files.now, attacker=True)
    engine = build_engine(load_policy(), read_accounts(accounts_path))
    intel = load_intel(
        [files.signed("member-a", files.with_rule(files.a_bundle()), "a.json")],
        members=files.members,
        group_secret=files.secret,
        now=files.now,
    )
    intel.matcher(engine.accounts).attach(engine, ceiling=True)
    rec = Recorder()
    engine.add_linker(rec)
    assert engine.value_linkers == [engine.linkers[1], rec]  # the matcher, then the recorder
    for e in exchanges:
        engine.observe(e)
    ids = [s.id for s in engine.signals]
    assert len(rec.seen) == len(exchanges)  # every decision point (all dense here)
    assert all(seen == ids for _, seen, _ in rec.seen)
    z = [n for aid, _, n in rec.seen if aid == ATTACKER]
    assert z == list(range(1, len(z) + 1))  # the exchanges as of each decision


def test_without_rules_nothing_is_evaluated_and_verdicts_are_unchanged(
    tmp_path: Path, files: IntelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A matcher with no rules costs a re-score nothing (no rule table is ever built), and an
    engine it is attached to with nothing indexed decides exactly as one without it."""

    def boom(*args: object) -> None:
        raise AssertionError("rules evaluated without rules")

    monkeypatch.setattr(RuleTable, "__init__", boom)
    monkeypatch.setattr(IntelIndex, "match_rules", boom)
    _, accounts_path, exchanges = receiver_log(tmp_path / "r", files.now, attacker=True)
    accounts = read_accounts(accounts_path)
    plain = build_engine(load_policy(), accounts)
    attached = build_engine(load_policy(), accounts)
    empty = IntelIndex(GROUP, bytes.fromhex(SECRET_HEX))
    IntelMatcher(empty, TrustPolicy(GROUP, {}, {"member-a": 0.9}), accounts).attach(
        attached, ceiling=True
    )
    keyed = build_engine(load_policy(), accounts)  # keyed indicators only: no rule either
    load_intel(
        [files.signed("member-a", files.a_bundle(), "a.json")],
        members=files.members,
        group_secret=files.secret,
        now=files.now,
    ).matcher(accounts).attach(keyed, ceiling=True)
    for e in exchanges:
        plain.observe(e)
        attached.observe(e)
        keyed.observe(e)
    enc = msgspec.json.Encoder()
    assert [enc.encode(v) for v in plain.verdicts()] == [enc.encode(v) for v in attached.verdicts()]
    assert keyed.verdicts()


def test_rules_of_a_member_we_do_not_trust_add_nothing(tmp_path: Path, files: IntelFiles) -> None:
    stix = copy.deepcopy(only_rule(files, files.a_bundle()))
    with_intel, without, matcher, exchanges = _engines(files, tmp_path, stix, at=timedelta(0))
    matcher.policy = TrustPolicy(GROUP, {}, {"member-c": 0.9})  # member-a: weight 0
    scores = _scores(with_intel, without, exchanges)
    assert all(s == base for _, s, base in scores)
    ev = matcher.evidence(ATTACKER, exchanges[-1].ts.timestamp())
    assert ev is not None and ev.evidence == 0.0
