"""The campaign graph the report draws: read from the linker, bounded, keys by pseudonym."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from distillwatch.attribute import Campaign, read_campaigns, write_campaigns
from distillwatch.attribute.campaign_graph import campaign_graph, with_graphs
from distillwatch.attribute.campaigns import key_ref
from distillwatch.attribute.keys import STRONG, family
from distillwatch.attribute.linker import CampaignLinker
from tests.attribute.streams import World, campaign, customers, every, run


def _linked(size: int = 12, requests: int = 20, seed: int = 5) -> tuple[CampaignLinker, World]:
    rng = random.Random(seed)
    world = World()
    customers(world, rng, 20, requests=10)
    campaign(world, rng, size=size, requests=requests)
    linker = run(every(world), world.accounts, acted=sorted(world.groups["camp"]))
    return linker, world


@pytest.fixture(scope="module")
def linked() -> tuple[CampaignLinker, World]:
    return _linked()


def test_graph_matches_the_linker(linked: tuple[CampaignLinker, World]) -> None:
    linker, world = linked
    (camp,) = with_graphs(linker)
    g = camp.graph
    assert g is not None
    assert set(g.accounts) == set(camp.accounts) == world.groups["camp"]  # 12 < the limit
    assert g.more_accounts == 0
    assert len(g.exchanges) == len(g.holds) == len(g.accounts)
    assert all(n == 20 for n in g.exchanges)  # every campaign account sent 20 requests
    # each drawn key: the members holding it, as the linker's graph holds them
    by_ref = {key_ref(k): k for k in linker.graph.nodes}
    members = set(camp.accounts)
    for i, k in enumerate(g.keys):
        node = linker.graph.nodes[by_ref[k.ref]]
        inside = {a for a in node.members if a in members}
        assert k.members == len(inside) >= 2
        assert k.family == family(by_ref[k.ref])
        assert k.weight > 0 and k.units == node.units
        assert {a for a, held in zip(g.accounts, g.holds, strict=True) if i in held} == inside
    assert g.more_keys == len(linker.campaigns[camp.campaign_id].keys) - len(g.keys)
    assert {k.family for k in g.keys} & STRONG  # the strong evidence is drawn


def test_graph_is_bounded_and_says_what_it_leaves_out(
    linked: tuple[CampaignLinker, World],
) -> None:
    linker, _ = linked
    (camp,) = linker.detected()
    g = campaign_graph(linker, camp, max_keys=4, max_accounts=5)
    assert g is not None
    assert len(g.keys) == 4 and len(g.accounts) == 5
    assert g.more_accounts == camp.size - 5
    assert g.more_keys == len(linker.campaigns[camp.campaign_id].keys) - 4
    # every key drawn has at least one drawn account on it
    assert all(any(i in held for held in g.holds) for i in range(len(g.keys)))
    assert sum(1 for k in g.keys if k.family in STRONG) >= 2  # half the budget: strong first


def test_no_key_value_in_the_file(linked: tuple[CampaignLinker, World], tmp_path: Path) -> None:
    linker, world = linked
    path = tmp_path / "campaigns.jsonl"
    write_campaigns(path, with_graphs(linker))
    text = path.read_text()
    assert '"graph":' in text
    graph_part = text[text.index('"graph":') :]
    for e in world.exchanges:
        if e.account_id in world.groups["camp"]:
            assert e.ip not in graph_part and (e.user_agent or "@") not in graph_part
    for a in world.groups["camp"]:
        card = world.accounts[a].payment_fingerprint
        assert card and card not in text


def test_files_stay_compatible(linked: tuple[CampaignLinker, World], tmp_path: Path) -> None:
    linker, _ = linked
    path = tmp_path / "campaigns.jsonl"
    new = with_graphs(linker)
    write_campaigns(path, new)
    assert read_campaigns(path) == new

    class OldCampaign(msgspec.Struct, kw_only=True):  # a reader that predates ``graph``
        campaign_id: str
        accounts: list[str]
        size: int
        acted: int
        evidence: dict[str, float]
        shared_keys: dict[str, int]

    old = msgspec.json.decode(path.read_bytes().splitlines()[0], type=OldCampaign)
    assert old.campaign_id == new[0].campaign_id and old.accounts == new[0].accounts
    # and a line written before ``graph`` existed reads with ``graph`` None
    line = b'{"campaign_id":"camp_x","accounts":["a","b"],"size":2,"acted":2,'
    line += b'"evidence":{"card":0.5},"shared_keys":{"card":1}}\n'
    path.write_bytes(line)
    (c,) = read_campaigns(path)
    assert isinstance(c, Campaign) and c.graph is None


def test_same_log_same_graph() -> None:
    a, _ = _linked(seed=9)
    b, _ = _linked(seed=9)
    assert with_graphs(a) == with_graphs(b)
