"""``distillwatch scan`` writes campaigns.jsonl next to the verdicts, and campaign ids in them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillwatch.attribute import Campaign, read_campaigns, write_campaigns
from distillwatch.cli.main import app
from distillwatch.errors import DistillwatchError
from distillwatch.log import read_verdicts, write_records
from tests.attribute.streams import World, campaign, customers

runner = CliRunner()


def _files(tmp_path: Path) -> tuple[Path, Path, World]:
    rng = random.Random(11)
    world = World()
    customers(world, rng, 30, requests=25)
    campaign(world, rng, size=12, requests=60)
    log, accounts = tmp_path / "log.jsonl", tmp_path / "accounts.jsonl"
    write_records(log, "exchanges", [world.sorted()])
    write_records(accounts, "accounts", [list(world.accounts.values())])
    return log, accounts, world


POLICY = """name: eager
version: 1
thresholds: {monitor: 0.3, throttle: 0.5, protect: 0.9, block: 0.97}
min_exchanges: 20
"""


def test_scan_writes_campaigns_consistent_with_the_verdicts(tmp_path: Path) -> None:
    log, accounts, world = _files(tmp_path)
    policy = tmp_path / "eager.yaml"
    policy.write_text(POLICY)  # acts on the harvest accounts, not on the customers
    out = tmp_path / "out" / "verdicts.jsonl"
    args = ["scan", str(log), "--accounts", str(accounts), "-o", str(out), "-q"]
    result = runner.invoke(app, [*args, "--policy", str(policy)])
    assert result.exit_code == 0, result.output
    campaigns = read_campaigns(out.parent / "campaigns.jsonl")
    verdicts = {v.account_id: v.campaign_id for v in read_verdicts(out)}
    for c in campaigns:
        assert all(verdicts[a] == c.campaign_id for a in c.accounts)
        assert set(c.accounts) <= world.groups["camp"]
    listed = {a for c in campaigns for a in c.accounts}
    assert {a for a, cid in verdicts.items() if cid is not None} == listed
    assert listed == world.groups["camp"]
    assert "1 campaign →" in result.output


def test_no_campaigns_writes_none(tmp_path: Path) -> None:
    log, accounts, _ = _files(tmp_path)
    out = tmp_path / "verdicts.jsonl"
    args = ["scan", str(log), "--accounts", str(accounts), "-o", str(out), "-q", "--no-campaigns"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "campaigns.jsonl").exists()
    assert all(v.campaign_id is None for v in read_verdicts(out))


def test_campaigns_file_round_trip_and_bad_line(tmp_path: Path) -> None:
    c = Campaign(
        campaign_id="camp_x",
        accounts=["a", "b"],
        size=2,
        acted=2,
        evidence={"card": 0.5},
        shared_keys={"card": 1},
    )
    path = tmp_path / "campaigns.jsonl"
    assert write_campaigns(path, [c]) == 1
    assert read_campaigns(path) == [c]
    path.write_text(path.read_text() + '{"campaign_id": 3}\n')
    with pytest.raises(DistillwatchError, match=r"campaigns.jsonl:2: not a campaign record"):
        read_campaigns(path)
