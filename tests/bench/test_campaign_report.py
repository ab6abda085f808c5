"""``scan --report``: a valid, self-contained SVG picture per campaign, bounded, no key values."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillwatch.attribute import Campaign, read_campaigns
from distillwatch.attribute.campaigns import CampaignGraph, GraphKey
from distillwatch.bench.campaign_svg import ACTIONS, FAMILIES, picture, render_svg
from distillwatch.bench.scan_report import render_scan_report
from distillwatch.cli.main import app
from distillwatch.log import read_verdicts, write_records
from tests.attribute.streams import World, campaign, customers

runner = CliRunner()

POLICY = """name: eager
version: 1
thresholds: {monitor: 0.3, throttle: 0.5, protect: 0.9, block: 0.97}
min_exchanges: 20
"""

SECTION = re.compile(r'<section id="([^"]+)">(.*?)</section>', re.S)
SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def _small() -> Campaign:
    """Four accounts, three keys: a card two of them hold, an address three hold, a scaffold."""
    keys = [
        GraphKey(ref="card:aaaaaaaaaaaa", family="card", weight=0.5, members=2, units=2),
        GraphKey(ref="ip:bbbbbbbbbbbb", family="ip", weight=0.3, members=3, units=4),
        GraphKey(ref="scaffold:h0badcafe", family="scaffold", weight=0.15, members=2, units=2),
    ]
    graph = CampaignGraph(
        keys=keys,
        accounts=["a1", "a2", "a3", "a4"],
        exchanges=[10, 40, 90, 0],
        holds=[[0, 1], [0, 1, 2], [1], []],
    )
    return Campaign(
        campaign_id="camp_<small>",
        accounts=["a1", "a2", "a3", "a4"],
        size=4,
        acted=2,
        evidence={"card": 0.5, "ip": 0.3, "scaffold": 0.15},
        shared_keys={"card": 1, "ip": 1, "scaffold": 1},
        first_seen=datetime(2026, 3, 2, tzinfo=UTC),
        last_seen=datetime(2026, 3, 4, tzinfo=UTC),
        exchanges=140,
        graph=graph,
    )


def _edges(svg: ET.Element) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in svg.iter("path"):
        if p.get("class") == "edge":
            fam = p.get("data-family") or ""
            out[fam] = out.get(fam, 0) + (p.get("d") or "").count("M")
    return out


def test_small_campaign_nodes_and_edges_match_the_data() -> None:
    c = _small()
    actions = {"a1": "block", "a2": "throttle", "a3": "allow"}  # a4: no verdict
    svg = ET.fromstring(render_svg(picture(c, actions)))
    circles = [e for e in svg.iter("circle") if e.get("class") == "account"]
    rects = [e for e in svg.iter("rect") if e.get("class") == "key"]
    assert len(circles) == 4 and len(rects) == 3
    assert [r.get("data-family") for r in rects] == ["card", "ip", "scaffold"]
    assert _edges(svg) == {"card": 2, "ip": 3, "scaffold": 1}
    by_id = {(e.findtext("title") or "").split(" · ")[0]: e for e in circles}
    assert by_id["a1"].get("fill") == ACTIONS["block"]
    assert by_id["a2"].get("fill") == ACTIONS["throttle"]
    assert by_id["a4"].get("stroke-dasharray") is not None  # no verdict: a dashed rim
    radius = {a: float(by_id[a].get("r") or 0) for a in by_id}
    assert radius["a4"] < radius["a1"] < radius["a2"] < radius["a3"]  # sized by volume
    legend = " ".join(svg.itertext())
    for fam in ("card", "ip", "scaffold"):
        assert FAMILIES[fam][1] in legend
    assert FAMILIES["agent"][1] not in legend  # only the key types present
    assert "all 4 accounts drawn; all 3 shared keys" in legend


def test_rendering_is_deterministic_and_escaped() -> None:
    c = _small()
    one, two = render_svg(picture(c)), render_svg(picture(c))
    assert one == two
    assert "camp_<small>" not in one and "camp_&lt;small&gt;" in one
    ET.fromstring(one)


def test_aggregation_is_stated() -> None:
    g = _small().graph
    assert g is not None
    big = Campaign(
        campaign_id="camp_big",
        accounts=[f"x{i}" for i in range(2_390)],
        size=2_390,
        acted=2_000,
        evidence={"card": 1.0},
        shared_keys={"card": 40, "ip": 21},
        graph=CampaignGraph(
            keys=g.keys,
            accounts=g.accounts,
            exchanges=g.exchanges,
            holds=g.holds,
            more_keys=58,
            more_accounts=2_386,
        ),
    )
    page = render_scan_report([], [big])
    assert "4 of 2,390 accounts drawn (+2,386 more)" in page
    assert "3 of 61 shared keys (+58 more)" in page


def test_campaign_without_graph_still_gets_a_picture() -> None:
    c = Campaign(
        campaign_id="camp_old",
        accounts=["a", "b", "c"],
        size=3,
        acted=2,
        evidence={"card": 0.5, "signup": 0.2},
        shared_keys={"card": 1, "signup": 2},
    )
    (section,) = SECTION.findall(render_scan_report([], [c]))
    svg = ET.fromstring(SVG.findall(section[1])[0])
    assert len([e for e in svg.iter("circle") if e.get("class") == "account"]) == 3
    assert len([e for e in svg.iter("rect") if e.get("class") == "key"]) == 2
    assert _edges(svg) == {}  # who holds what is unknown: nothing is drawn as if known
    assert "was not recorded" in section[1]


def _world(tmp_path: Path) -> tuple[Path, Path, World]:
    rng = random.Random(3)
    world = World()
    customers(world, rng, 80, requests=15)
    campaign(world, rng, name="hydra", size=96, requests=22)
    campaign(world, rng, name="sweep", size=12, requests=60, opened_days_ago=4.0)
    log, accounts = tmp_path / "log.jsonl", tmp_path / "accounts.jsonl"
    write_records(log, "exchanges", [world.sorted()])
    write_records(accounts, "accounts", [list(world.accounts.values())])
    return log, accounts, world


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, World]:
    tmp = tmp_path_factory.mktemp("scan")
    log, accounts, world = _world(tmp)
    policy = tmp / "eager.yaml"
    policy.write_text(POLICY)
    out = tmp / "out" / "verdicts.jsonl"
    args = ["scan", str(log), "--accounts", str(accounts), "-o", str(out), "-q"]
    result = runner.invoke(app, [*args, "--policy", str(policy), "--report", str(tmp / "r.html")])
    assert result.exit_code == 0, result.output
    assert "report →" in result.output
    return tmp, world


def test_every_campaign_gets_a_valid_picture(scanned: tuple[Path, World]) -> None:
    tmp, _ = scanned
    campaigns = read_campaigns(tmp / "out" / "campaigns.jsonl")
    assert len(campaigns) == 2
    page = (tmp / "r.html").read_text(encoding="utf-8")
    sections = dict(SECTION.findall(page))
    assert set(sections) == {c.campaign_id for c in campaigns}
    for c in campaigns:
        (svg_text,) = SVG.findall(sections[c.campaign_id])
        svg = ET.fromstring(svg_text)
        assert svg.tag == "svg" and svg.get("viewBox")
        circles = [e for e in svg.iter("circle") if e.get("class") == "account"]
        g = c.graph
        assert g is not None
        assert len(circles) == len(g.accounts) == min(c.size, 80)
        assert _edges(svg) and sum(_edges(svg).values()) == sum(len(h) for h in g.holds)
    verdicts = read_verdicts(tmp / "out" / "verdicts.jsonl")
    assert "Most suspicious accounts" in page and f"{len(verdicts):,} accounts" in page


def test_aggregation_kicks_in_above_the_limit(scanned: tuple[Path, World]) -> None:
    tmp, world = scanned
    campaigns = read_campaigns(tmp / "out" / "campaigns.jsonl")
    big = max(campaigns, key=lambda c: c.size)
    assert big.size > 80 and set(big.accounts) <= world.groups["hydra"]
    assert big.graph is not None and big.graph.more_accounts == big.size - 80
    page = (tmp / "r.html").read_text(encoding="utf-8")
    assert f"80 of {big.size:,} accounts drawn (+{big.size - 80:,} more)" in page
    (svg_text,) = SVG.findall(dict(SECTION.findall(page))[big.campaign_id])
    assert len(svg_text.encode()) < 48_000  # small in bytes however large the campaign


def test_no_key_value_in_the_page(scanned: tuple[Path, World]) -> None:
    tmp, world = scanned
    page = (tmp / "r.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for e in world.exchanges:
        assert e.ip not in page
        assert (e.user_agent or "@") not in page
    for acct in world.accounts.values():
        assert (acct.payment_fingerprint or "@") not in page
    for c in read_campaigns(tmp / "out" / "campaigns.jsonl"):
        assert c.graph is not None
        for k in c.graph.keys:  # pseudonyms stay in the file, except scaffold sketches
            assert (k.ref in page) == (k.family == "scaffold")


def test_report_to_a_bad_place_is_one_line(tmp_path: Path) -> None:
    log, accounts, _ = _world(tmp_path)
    bad = tmp_path / "missing" / "r.html"
    out = tmp_path / "v.jsonl"
    args = ["scan", str(log), "--accounts", str(accounts), "-o", str(out), "-q"]
    result = runner.invoke(app, [*args, "--report", str(bad)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "cannot write" in result.output


def test_demo_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILLWATCH_DATA", "")  # the packaged sample, wherever this runs
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--scale", "0.1", "--top", "0"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    ids = {c.campaign_id for c in read_campaigns(out / "campaigns.jsonl")}
    assert set(dict(SECTION.findall(page))) == ids
    assert "report.html" in result.output
