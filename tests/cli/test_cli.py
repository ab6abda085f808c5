"""The command line: verdicts for every account, one-line errors, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.log import read_labels, read_verdicts, write_records
from tests.factories import exchange

runner = CliRunner()


def _log(tmp_path: Path, n: int = 300) -> Path:
    path = tmp_path / "log.jsonl"
    texts = ["Solve step by step: 9*9", "good morning", "Show your work: 3x=12"]
    write_records(
        path,
        "exchanges",
        [
            [
                exchange(
                    i,
                    account=f"acct-{i % 6}",
                    seconds=i * 1.5,
                    text=texts[i % 3 if i % 6 == 0 else 1],
                )
                for i in range(n)
            ]
        ],
    )
    return path


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and 'File "' not in output


def test_scan_writes_a_verdict_per_account(tmp_path: Path) -> None:
    out = tmp_path / "verdicts.jsonl"
    result = runner.invoke(app, ["scan", str(_log(tmp_path)), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    verdicts = read_verdicts(out)
    assert sorted(v.account_id for v in verdicts) == [f"acct-{i}" for i in range(6)]
    assert "300 exchanges from 6 accounts" in result.output
    assert "no accounts file" in result.output  # says what it could not compute


def test_scan_with_accounts_does_not_warn_about_them(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_text('{"account_id": "acct-0", "tier": "free"}\n')
    out = tmp_path / "v.jsonl"
    args = ["scan", str(_log(tmp_path)), "--accounts", str(accounts), "-o", str(out), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no accounts file" not in result.output


@pytest.mark.parametrize("name", ["verdicts.parquet", "verdicts.jsonl.gz"])
def test_scan_output_formats(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    result = runner.invoke(app, ["scan", str(_log(tmp_path)), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert len(read_verdicts(out)) == 6


def test_bad_line_is_one_line_error(tmp_path: Path) -> None:
    log = _log(tmp_path, 10)
    log.write_text(log.read_text() + '{"id": "x", "ts": "yesterday"}\n')
    out = tmp_path / "v.jsonl"
    result = runner.invoke(app, ["scan", str(log), "--out", str(out), "-q"])
    assert result.exit_code == 2
    _no_traceback(result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{log}:11: field `ts`" in lines[0]
    assert not out.exists()  # nothing half-written


def test_skip_invalid_reports_and_carries_on(tmp_path: Path) -> None:
    log = _log(tmp_path, 10)
    log.write_text(log.read_text() + "{oops\n")
    out = tmp_path / "v.jsonl"
    result = runner.invoke(app, ["scan", str(log), "--out", str(out), "-q", "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 invalid record(s)" in result.output
    assert f"{log}:11" in result.output


def test_unknown_policy_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: p\nversion: 1\nthresholds:\n  monitor: 0.5\n  throttl: 0.8\n")
    result = runner.invoke(app, ["scan", str(_log(tmp_path)), "--policy", str(policy), "-q"])
    assert result.exit_code == 2
    _no_traceback(result.output)
    assert f"{policy}:5" in result.stderr and "thresholds.throttl" in result.stderr


def test_scan_needs_exactly_one_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scan", "-q"])
    assert result.exit_code == 2 and "exactly one of LOG, --store or --table" in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scan", str(tmp_path / "nope.jsonl"), "-q"])
    assert result.exit_code == 2 and "no such file" in result.stderr
    _no_traceback(result.output)


def test_bad_environment_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILLWATCH_BATCH_SIZE", "zero")
    result = runner.invoke(app, ["scan", str(_log(tmp_path)), "-q"])
    assert result.exit_code == 2 and "DISTILLWATCH_BATCH_SIZE" in result.stderr


def test_validate(tmp_path: Path) -> None:
    log = _log(tmp_path, 20)
    ok = runner.invoke(app, ["validate", str(log)])
    assert ok.exit_code == 0 and "20 valid exchanges record(s), 0 invalid" in ok.output
    log.write_text(log.read_text() + "[]\n" + '{"id":"y"}\n')
    bad = runner.invoke(app, ["validate", str(log)])
    assert bad.exit_code == 1
    assert f"{log}:21:" in bad.output and f"{log}:22:" in bad.output
    assert "2 invalid" in bad.output
    kind = runner.invoke(app, ["validate", str(log), "--kind", "nope"])
    assert kind.exit_code == 2


@pytest.mark.parametrize("command", ["scan", "validate", "ingest", "demo"])
def test_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_ingest_then_scan_from_store(tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path / 'events.duckdb'}"
    log = _log(tmp_path)
    first = runner.invoke(app, ["ingest", str(log), "--store", store])
    assert first.exit_code == 0 and "300 new" in first.output
    again = runner.invoke(app, ["ingest", str(log), "--store", store])
    assert again.exit_code == 0 and "0 new, 300 already stored" in again.output
    out = tmp_path / "v.jsonl"
    scanned = runner.invoke(app, ["scan", "--store", store, "--out", str(out), "-q"])
    assert scanned.exit_code == 0, scanned.output
    direct = tmp_path / "direct.jsonl"
    runner.invoke(app, ["scan", str(log), "--out", str(direct), "-q"])
    assert read_verdicts(out) == read_verdicts(direct)


def test_scan_gives_idle_accounts_from_the_accounts_file_a_verdict(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_text('{"account_id": "acct-0", "tier": "free"}\n{"account_id": "idle"}\n')
    out = tmp_path / "v.jsonl"
    result = runner.invoke(
        app, ["scan", str(_log(tmp_path)), "--accounts", str(accounts), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    verdicts = {v.account_id: v for v in read_verdicts(out)}
    assert set(verdicts) == {f"acct-{i}" for i in range(6)} | {"idle"}
    idle = verdicts["idle"]
    assert idle.action.value == "allow" and idle.first_action_ts is None
    assert idle.evidence is not None and idle.evidence.exchanges == 0


def test_demo_generates_scans_and_compares_with_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILLWATCH_DATA", "")  # the packaged sample, wherever this runs
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--scale", "0.1", "--top", "5"])
    assert result.exit_code == 0, result.output
    _no_traceback(result.output)
    labels = read_labels(out / "labels.jsonl")
    verdicts = read_verdicts(out / "verdicts.jsonl")
    assert {v.account_id for v in verdicts} == set(labels)
    assert "Most suspicious accounts" in result.output
    assert "cot-harvest-hydra" in result.output and "packaged sample" in result.output
