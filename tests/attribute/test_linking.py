"""Linking crafted multi-account streams: campaigns are found, hard negatives are not."""

from __future__ import annotations

import random

import pytest

from distillwatch.attribute import CampaignLinker
from distillwatch.attribute.cluster import LinkRule, find_blocks, peel
from distillwatch.records import Action
from tests.attribute.streams import (
    World,
    campaign,
    classroom,
    customers,
    groups_of,
    office,
    popular_prompt,
    run,
)


def _world(seed: int = 1, **knobs: float) -> World:
    rng = random.Random(seed)
    world = World()
    customers(world, rng, 60)
    campaign(world, rng, **knobs)  # type: ignore[arg-type]
    return world


def test_a_campaign_is_found_among_customers() -> None:
    world = _world()
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == [world.groups["camp"]]


def test_two_campaigns_stay_apart() -> None:
    """Same public templates, same client library, same proxy pool: still two operators."""
    rng = random.Random(2)
    world = World()
    customers(world, rng, 40)
    campaign(world, rng, name="alpha", size=9)
    campaign(world, rng, name="beta", size=12, per_card=4, opened_days_ago=6.0)
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == [world.groups["alpha"], world.groups["beta"]]


@pytest.mark.parametrize("camouflage", [0.5, 0.8])
def test_camouflage_does_not_hide_a_campaign(camouflage: float) -> None:
    """Members that mostly send ordinary chat from a browser are still one campaign."""
    world = _world(camouflage=camouflage, requests=40)
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == [world.groups["camp"]]


@pytest.mark.parametrize(
    "negative",
    [
        pytest.param(office, id="20 accounts of one organisation behind one NAT"),
        pytest.param(classroom, id="a classroom sharing one address"),
        pytest.param(popular_prompt, id="unrelated users sending one popular prompt"),
    ],
)
def test_hard_negatives_do_not_form_a_campaign(negative: object) -> None:
    rng = random.Random(3)
    world = World()
    customers(world, rng, 40)
    negative(world, rng)  # type: ignore[operator]
    campaign(world, rng)
    everyone = world.accounts
    acted = set(everyone)  # even when every one of them is acted on
    linker = run(world.sorted(), everyone, acted=acted)
    assert groups_of(linker) == [world.groups["camp"]]
    reported = {a for c in linker.detected() for a in c.accounts}
    assert reported == world.groups["camp"]


def test_a_new_member_of_a_detected_campaign_attaches_at_its_first_exchange() -> None:
    world = _world(size=12)
    members = sorted(world.groups["camp"])
    newcomer = members[-1]
    history = [e for e in world.sorted() if e.account_id != newcomer]
    later = [e for e in world.sorted() if e.account_id == newcomer]
    linker = run(history, world.accounts, acted=members[:4])
    assert linker.campaign_of(newcomer) is None
    first = later[0]
    linker.observe(first, first.ts.timestamp() + 1e6)
    cid = linker.campaign_of(newcomer)
    assert cid is not None and cid == linker.campaign_of(members[0])
    value = linker.evidence(newcomer, first.ts.timestamp() + 1e6)
    assert value is not None and value.evidence >= 2.0
    assert "campaign" in value.explanation


def test_no_evidence_before_the_campaign_is_detected() -> None:
    world = _world()
    members = sorted(world.groups["camp"])
    linker = run(world.sorted(), world.accounts, acted=members[:1])
    assert linker.campaigns  # linked …
    assert all(linker.evidence(a, 0.0) is None for a in members)  # … but not detected
    assert all(linker.campaign_of(a) is None for a in members)
    assert list(linker.detected()) == []
    linker.acted(members[1], Action.THROTTLE, 0.0)
    linker.acted(members[2], Action.BLOCK, 0.0)
    assert linker.evidence(members[5], 0.0) is not None
    assert linker.campaign_of(members[5]) is not None


def test_detection_touches_the_members() -> None:
    world = _world()
    members = sorted(world.groups["camp"])
    touched: list[str] = []
    linker = run(world.sorted(), world.accounts)
    linker.on_change = touched.append
    linker.acted(members[0], Action.THROTTLE, 0.0)
    assert touched == []
    linker.acted(members[1], Action.THROTTLE, 0.0)
    assert sorted(touched) == members


def test_campaign_record() -> None:
    world = _world()
    members = sorted(world.groups["camp"])
    linker = run(world.sorted(), world.accounts, acted=members)
    (record,) = linker.detected()
    assert record.accounts == members and record.size == len(members)
    assert record.acted == len(members)
    assert {"card", "signup"} <= set(record.evidence)
    assert record.exchanges == sum(1 for e in world.exchanges if e.account_id in members)
    assert record.first_seen is not None and record.last_seen is not None
    assert record.first_seen <= record.last_seen
    assert all(s.startswith("scaffold:") for s in record.scaffolds)


def test_accounts_without_sign_up_metadata_link_by_behaviour_only_when_strong() -> None:
    """Without an accounts table nothing strong is known: no campaign from proxies and
    templates alone (address sharing that is strong enough would still link)."""
    world = _world()
    linker = run(world.sorted(), {})
    assert groups_of(linker) == []


def test_peel_prefers_the_dense_block_over_a_camouflaged_popular_key() -> None:
    adj = {f"f{i}": ["card:x", "signup:y", "agent:sdk"] for i in range(5)}
    adj |= {f"u{i}": ["agent:sdk"] for i in range(40)}
    w = {"card:x": 0.5, "signup:y": 0.4, "agent:sdk": 0.05}
    accounts, _ = peel(sorted(adj), adj, w)
    assert accounts == [f"f{i}" for i in range(5)]
    blocks = find_blocks(adj, w, {a: None for a in adj}, rule=LinkRule())
    assert [b.accounts for b in blocks] == [tuple(f"f{i}" for i in range(5))]


def test_linker_is_a_linker() -> None:
    from distillwatch.detect.engine import Linker

    linker: Linker = CampaignLinker()
    assert linker.campaign_of("nobody") is None
    assert linker.evidence("nobody", 0.0) is None
