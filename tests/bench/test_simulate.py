"""``distillwatch simulate``: a scenario in, a valid labelled log out, one-line errors."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.log import read_accounts, read_exchanges, read_labels

runner = CliRunner()

TINY = """\
name: tiny
start: 2026-03-02T00:00:00Z
days: 0.5
release_after_days: 0.2
populations:
  - profile: chat
    count: 20
  - profile: vpn-user
    count: 5
  - profile: low-and-slow
    name: quiet-harvest
    count: 4
    knobs: {camouflage: 0.5, timing: bursty}
"""


@pytest.fixture(autouse=True)
def _sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISTILLWATCH_DATA", "")  # the packaged sample, wherever this runs
    monkeypatch.chdir(tmp_path)


def _digest(path: Path) -> str:
    with gzip.open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_simulate_a_packaged_scenario(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--scenario", "demo", "--out", str(out), "--scale", "0.05"]
    result = runner.invoke(app, [*args, "--days", "0.5", "--split", "test"])
    assert result.exit_code == 0, result.output
    assert "packaged sample" in result.output and "cot-harvest-hydra" in result.output
    labels = read_labels(out / "labels.jsonl")
    accounts = read_accounts(out / "accounts.jsonl")
    exchanges = [e for b in read_exchanges(out / "exchanges.jsonl.gz") for e in b]
    assert set(labels) == set(accounts) and exchanges
    assert {e.account_id for e in exchanges} <= set(labels)
    assert {lb.label for lb in labels.values()} == {"legit", "attack"}
    assert f"{len(exchanges):,} exchanges" in result.output
    ok = runner.invoke(app, ["validate", str(out / "exchanges.jsonl.gz")])
    assert ok.exit_code == 0, ok.output


def test_simulate_a_scenario_file_is_deterministic(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    for out in ("a", "b"):
        result = runner.invoke(
            app, ["simulate", "--scenario", str(scenario), "--out", out, "--seed", "3", "-q"]
        )
        assert result.exit_code == 0, result.output
    assert _digest(tmp_path / "a" / "exchanges.jsonl.gz") == _digest(
        tmp_path / "b" / "exchanges.jsonl.gz"
    )
    labels = read_labels(tmp_path / "a" / "labels.jsonl")
    profiles = {lb.profile for lb in labels.values()}
    assert profiles == {"chat", "vpn-user", "quiet-harvest"}
    campaigns = {lb.campaign_id for lb in labels.values() if lb.profile == "quiet-harvest"}
    assert len(campaigns) == 1 and None not in campaigns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "nope"], "packaged: default, demo, evasive"),
        (["--scenario", "demo", "--split", "train"], "must be one of dev, test, all"),
        (["--scenario", "bad.yaml"], "bad.yaml:6: `populations.0.profile`: unknown profile"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.yaml").write_text(TINY.replace("profile: chat", "profile: chit"))
    result = runner.invoke(app, ["simulate", *args, "--out", "sim"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "sim").exists()  # nothing written


def test_help() -> None:
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0 and "--scenario" in result.output and "--split" in result.output
