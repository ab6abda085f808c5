"""Per-account intel (accounts acted on, in a campaign or not) and local corroboration."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from stix2validator import ValidationOptions, validate_string

from distillwatch.detect import Engine, LogOddsScorer
from distillwatch.detect.scoring import logit
from distillwatch.policy import load_policy
from distillwatch.records import (
    Account,
    Action,
    Evidence,
    Exchange,
    PolicyRef,
    SignalValue,
    Verdict,
)
from distillwatch.share.collect import Collector, acted_accounts
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.pattern import KeyedHash, parse
from distillwatch.share.trust import TrustPolicy, load_members
from distillwatch.signals.base import EvalContext
from tests.share.test_export import _forms, assert_private
from tests.share.world import GROUP, LEGIT_DOMAIN, LEGIT_IP, NOW, SECRET, T0, Side, provider_a

SOLO = "solo-acct"
SOLO_CARD = "pm_solo_canary_7777"
SOLO_DOMAIN = "solo-canary-mail.example"
SOLO_IP = "198.18.7.7"  # carries 4 of its exchanges: its own address
ONE_OFF_IP = "198.18.9.9"  # one exchange: a rotating exit, not shared
POLICY = TrustPolicy(GROUP, {}, {"member-a": 0.9, "member-m": 0.9})


def _ex(account: str, i: int, ip: str, prefix: str = "a") -> Exchange:
    return Exchange(
        id=f"{prefix}-{account}-{i}",
        ts=T0 + timedelta(minutes=i),
        account_id=account,
        ip=ip,
        user_agent="curl/8",
        model="frontier-1",
        request={"messages": [{"role": "user", "content": f"question {i}"}]},
    )


def publisher(acted: tuple[str, ...] = (SOLO, "canary-acct-0")) -> tuple[Side, Collector]:
    """Provider A with one more account it acted on, outside every campaign."""
    side = provider_a()
    side.accounts[SOLO] = Account(
        account_id=SOLO, payment_fingerprint=SOLO_CARD, email_domain=SOLO_DOMAIN
    )
    side.accounts["solo-gmail"] = Account(account_id="solo-gmail", email_domain=LEGIT_DOMAIN)
    side.exchanges += [_ex(SOLO, i, SOLO_IP) for i in range(4)]
    side.exchanges += [_ex(SOLO, 4, ONE_OFF_IP)]
    side.exchanges += [_ex("solo-gmail", i, LEGIT_IP) for i in range(5)]  # behind the NAT
    col = Collector(
        {c.campaign_id: c.accounts for c in side.campaigns},
        side.accounts,
        acted=(*acted, "solo-gmail"),
    )
    col.run(lambda: [side.exchanges])
    return side, col


def export(acted: tuple[str, ...] = (SOLO, "canary-acct-0")) -> dict[str, Any]:
    side, col = publisher(acted)
    config = ExportConfig(member="member-a", group=GROUP, group_secret=SECRET)
    bundle, _ = build_bundle(side.campaigns, col, config, now=NOW)
    out: dict[str, Any] = json.loads(bundle.serialize())
    return out


def test_an_acted_on_account_shares_only_costly_attributes_nobody_else_holds() -> None:
    _, col = publisher()
    assert col.individual(SOLO) == {
        "card": {SOLO_CARD},
        "email_domain": {SOLO_DOMAIN},
        "ip": {SOLO_IP},  # not the one-off exit, never a network or client
    }
    # an acted-on account behind a customer NAT with a popular domain shares nothing
    assert col.individual("solo-gmail") == {}
    assert acted_accounts([]) == set()


def test_acted_accounts_come_from_verdicts() -> None:
    ref = PolicyRef(name="default", version=1, hash="x", rule="r")
    ev = Evidence(exchanges=30, signals={}, unavailable=[], policy=ref)
    acted = Verdict(
        account_id="x", score=0.9, action=Action.BLOCK, first_action_ts=NOW, evidence=ev
    )
    watched = Verdict(account_id="y", score=0.6, action=Action.MONITOR, evidence=ev)
    assert acted_accounts([acted, watched]) == {"x"}


def test_account_indicators_are_valid_private_and_tied_to_the_technique() -> None:
    bundle = export()
    assert validate_string(json.dumps(bundle), ValidationOptions(version="2.1")).errors == []
    text = json.dumps(bundle)
    assert_private(text)
    for value in (SOLO_CARD, SOLO_DOMAIN, SOLO_IP, SOLO, "solo-gmail"):
        assert not any(f.lower() in text.lower() for f in _forms(value)), value
    by_id = {o["id"]: o for o in bundle["objects"]}
    targets = {
        parse(by_id[r["source_ref"]]["pattern"]).render(): by_id[r["target_ref"]]["type"]
        for r in bundle["objects"]
        if r.get("relationship_type") == "indicates"
    }
    solo = [p for p in targets if "kind=card" in p and targets[p] == "attack-pattern"]
    assert len(solo) == 1  # the solo account's card indicates Extract AI Model, no campaign
    patterns = [o["pattern"] for o in bundle["objects"] if o["type"] == "indicator"]
    assert len(patterns) == len(set(patterns))  # the campaign's card is not repeated
    without = json.loads(json.dumps(export(acted=())))
    kinds = [parse(o["pattern"]) for o in without["objects"] if o["type"] == "indicator"]
    assert len(kinds) == len(patterns) - 3  # solo's card, domain and address


def _index(bundle: dict[str, Any], member: str = "member-a") -> IntelIndex:
    index = IntelIndex(GROUP, SECRET)
    index.add_bundle(member, bundle, now=NOW)
    return index


def test_account_indicators_name_no_campaign_at_the_receiver() -> None:
    index = _index(export())
    (ref,) = index.match_value("card", SOLO_CARD, NOW.timestamp())
    assert ref.campaign is None
    (camp,) = index.match_value("card", "pm_canary_5555AAAA", NOW.timestamp())
    assert (camp.campaign or "").startswith("campaign--")


def test_policy_local_corroboration() -> None:
    p = POLICY
    assert p.combine({"member-a": 0.8}) == (1.0, False)
    ev, ok = p.combine({"member-a": 0.8}, local=True)
    assert ok and ev == pytest.approx(6.0 * 0.72)
    assert p.combine({"member-a": 0.3}, local=True) == (1.0, False)  # a tip stays a tip
    assert p.combine({"member-x": 1.0}, local=True)[1] is False  # not a member we trust
    off = replace(p, local_min_score=None)
    assert off.combine({"member-a": 0.8}, local=True) == (1.0, False)


def test_members_file_local_min_score(tmp_path: Path) -> None:
    path = tmp_path / "members.yaml"
    path.write_text("group: g1\nmembers: {}\n")
    assert load_members(path).local_min_score == 0.5
    path.write_text("group: g1\nlocal_min_score: null\nmembers: {}\n")
    assert load_members(path).local_min_score is None
    path.write_text("group: g1\nlocal_min_score: 0.7\nmembers: {}\n")
    assert load_members(path).local_min_score == 0.7


class LocalStub:
    """A signal whose evidence is set per account (the receiver's own detection)."""

    id: ClassVar[str] = "test.local"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "test"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "fixed evidence per account"

    def __init__(self, evidence: dict[str, float]) -> None:
        self.by_account = evidence

    def new_state(self) -> None:
        return None

    def update(self, state: None, exchange: Exchange, t: float) -> None:
        return None

    def evaluate(self, state: None, ctx: EvalContext) -> SignalValue:
        aid = ctx.account.account_id if ctx.account else ""
        ev = self.by_account.get(aid, 0.0)
        return SignalValue(signal_id=self.id, version=1, value=ev, evidence=ev, explanation="")


RECEIVER = {  # account → its local log-odds evidence (prior 0.01: −4.6)
    "b-solo-watched": 4.8,  # local score 0.55: our detection watches it
    "b-solo-quiet": 2.0,  # local score 0.07
    "b-legit-watched": 4.8,  # a legit customer we watch, whose card a malicious member names
}


def receive(
    policy: TrustPolicy, *bundles: tuple[str, dict[str, Any]]
) -> tuple[Engine, IntelMatcher]:
    index = IntelIndex(GROUP, SECRET)
    for member, b in bundles:
        index.add_bundle(member, b, now=NOW)
    cards = {"b-solo-watched": SOLO_CARD, "b-solo-quiet": SOLO_CARD, "b-legit-watched": "pm_b_1"}
    accounts = {a: Account(account_id=a, payment_fingerprint=c) for a, c in cards.items()}
    engine = Engine([LocalStub(RECEIVER)], load_policy(), accounts, LogOddsScorer(prior=0.01))
    matcher = IntelMatcher(index, policy, accounts)
    matcher.attach(engine)
    for i in range(30):
        for aid in accounts:
            engine.observe(_ex(aid, i, "192.0.2.1", prefix="b"))
    return engine, matcher


def malicious(card: str) -> dict[str, Any]:
    """A member naming one card at confidence 100 (it needs the group secret only)."""
    from distillwatch.share.keys import GroupKeyer, epoch_id

    epoch = epoch_id(NOW)
    digest = GroupKeyer(SECRET, GROUP, epoch).digest("card", card)
    assert digest is not None
    ind = {
        "type": "indicator",
        "id": "indicator--00000000-0000-4000-8000-000000000001",
        "created": T0.isoformat(),
        "modified": T0.isoformat(),
        "pattern_type": "distillwatch",
        "pattern": KeyedHash("card", GROUP, epoch, digest).render(),
        "valid_from": T0.isoformat(),
        "confidence": 100,
    }
    return {"type": "bundle", "id": "bundle--1", "objects": [ind]}


def test_one_member_and_our_own_detection_act_one_member_alone_does_not() -> None:
    engine, matcher = receive(POLICY, ("member-a", export()))
    t = engine.last_t or 0.0
    watched, quiet = engine.states["b-solo-watched"], engine.states["b-solo-quiet"]
    assert watched.first_action_t is not None  # A's card + our own score 0.55: acted on
    assert engine.verdict(watched, t).action.enforces
    ev = matcher.evidence("b-solo-watched", t)
    assert ev is not None and "corroborated by our own detection" in ev.explanation
    assert matcher.ceiling("b-solo-watched", t) is Action.BLOCK
    assert quiet.first_action_t is None  # A's card alone: a tip
    assert matcher.ceiling("b-solo-quiet", t) is Action.MONITOR
    ev = matcher.evidence("b-solo-quiet", t)
    assert ev is not None and "monitor only" in ev.explanation
    # the local score leaves intel's own evidence out: intel never corroborates itself
    assert matcher.local is not None
    local = matcher.local.score  # type: ignore[attr-defined]
    assert local(watched, t) == pytest.approx(1 / (1 + math.exp(-(logit(0.01) + 4.8))))
    assert engine.score(watched, t).score > 0.95  # with intel's evidence (+4.32)


def test_without_local_corroboration_one_member_only_tips() -> None:
    engine, _ = receive(replace(POLICY, local_min_score=None), ("member-a", export()))
    assert all(st.first_action_t is None for st in engine.states.values())


def test_a_malicious_member_needs_our_detection_to_agree() -> None:
    engine, _ = receive(POLICY, ("member-m", malicious("pm_b_1")))
    # a customer we already watch is the one place a lone member's claim can bite: the reason
    # ``local_min_score`` is the monitor threshold, not lower (docs/intel.md measures it)
    assert engine.states["b-legit-watched"].first_action_t is not None
    engine, _ = receive(replace(POLICY, local_min_score=0.6), ("member-m", malicious("pm_b_1")))
    assert engine.states["b-legit-watched"].first_action_t is None
