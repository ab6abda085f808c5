"""The full-scale benchmark's pieces at toy size: the scenario, Parquet output, the passes.

Nothing here generates the full scale: the scenario is checked as data, logs use ``--scale``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from distillwatch.bench.scenario import load_scenario
from distillwatch.bench.traffic import Generated, generate
from distillwatch.cli.main import app
from distillwatch.cli.simulate import log_target
from distillwatch.errors import ConfigError
from distillwatch.log import read_exchanges, read_labels, read_verdicts
from distillwatch.log.kinds import EXCHANGES
from distillwatch.log.parquet import check_schema

runner = CliRunner()


def _script(name: str) -> ModuleType:
    """A script of bench/ (not a package: mypy checks it as a top-level file)."""
    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fullscale = _script("fullscale")


@pytest.fixture(autouse=True)
def _sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISTILLWATCH_DATA", "")  # the packaged sample, wherever this runs
    monkeypatch.chdir(tmp_path)


def test_fullscale_is_the_reported_campaign_in_the_default_mix() -> None:
    full, default = load_scenario("fullscale"), load_scenario("default")
    hydras = [p for p in full.populations if p.profile == "cot-harvest-hydra"]
    assert len(hydras) == 1  # exactly one campaign of the reported shape
    assert hydras[0].count == 24_000 and hydras[0].knobs.get("per_account_per_day") == 26
    # the campaign alone: 24,000 x 26 a day over the log's days
    assert 24_000 * 26 * full.days >= 4_000_000
    # legitimate background: every legitimate population of `default`, in its proportions
    legit = {p.label: p.count for p in full.populations if p.profile != "cot-harvest-hydra"}
    base = {p.label: p.count for p in default.populations if p.profile != "cot-harvest-hydra"}
    assert set(legit) == set(base)
    ratios = {legit[k] / base[k] for k in ("chat", "developer", "app-backend", "cron", "office")}
    assert len(ratios) == 1 and ratios.pop() >= 30
    for attack in ("low-and-slow", "capability-sweep", "reseller", "naive-scraper"):
        assert legit[attack] == base[attack]  # the other attacks at their usual sizes


def test_log_target_reads_out_like_scan_does(tmp_path: Path) -> None:
    assert log_target(Path("sim")) == (Path("sim"), "exchanges.jsonl.gz")
    assert log_target(Path("a/x.parquet")) == (Path("a"), "x.parquet")
    assert log_target(Path("a/x.jsonl")) == (Path("a"), "x.jsonl")
    assert log_target(Path("sim"), "parquet") == (Path("sim"), "exchanges.parquet")
    (tmp_path / "dir.parquet").mkdir()  # an existing folder stays a folder
    assert log_target(tmp_path / "dir.parquet") == (tmp_path / "dir.parquet", "exchanges.jsonl.gz")
    with pytest.raises(ConfigError, match=r"one of: jsonl\.gz, jsonl, parquet"):
        log_target(Path("sim"), "csv")
    with pytest.raises(ConfigError, match="format is jsonl"):
        log_target(Path("a/x.parquet"), "jsonl")


def _small(out: Path, name: str, row_group: int = 65_536) -> Generated:
    return generate(
        out,
        seed=3,
        scale=0.05,
        days=0.25,
        use_shared_data=False,
        exchanges_name=name,
        row_group=row_group,
    )


def test_parquet_log_has_the_same_records_in_bounded_row_groups(tmp_path: Path) -> None:
    a = _small(tmp_path / "a", "exchanges.jsonl.gz")
    b = _small(tmp_path / "b", "exchanges.parquet", row_group=300)
    assert b.exchanges_path.name == "exchanges.parquet" and b.exchanges == a.exchanges > 600
    meta = pq.ParquetFile(b.exchanges_path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert max(sizes) <= 300 and len(sizes) == -(-a.exchanges // 300)
    assert meta.schema.to_arrow_schema().equals(EXCHANGES.schema)  # the log module's layout
    jsonl = [e for batch in read_exchanges(a.exchanges_path) for e in batch]
    parquet = [e for batch in read_exchanges(b.exchanges_path) for e in batch]
    assert parquet == jsonl
    assert b.accounts_path.read_bytes() == a.accounts_path.read_bytes()


def test_simulate_to_parquet_then_scan_it(tmp_path: Path) -> None:
    log = tmp_path / "sim" / "exchanges.parquet"
    args = ["simulate", "--scenario", "fullscale", "--scale", "0.002", "--days", "0.2"]
    made = runner.invoke(app, [*args, "--out", str(log), "-q"])
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in log.parent.iterdir()) == [
        "accounts.jsonl",
        "exchanges.parquet",
        "labels.jsonl",
    ]
    labels = read_labels(log.parent / "labels.jsonl")
    campaigns = {lb.campaign_id for lb in labels.values() if lb.profile == "cot-harvest-hydra"}
    assert len(campaigns) == 1 and None not in campaigns
    assert sum(lb.profile == "cot-harvest-hydra" for lb in labels.values()) == 48
    rows = pq.ParquetFile(log).metadata.num_rows
    assert f"{rows:,} exchanges" in made.output
    out = tmp_path / "verdicts.jsonl"
    scan = runner.invoke(
        app, ["scan", str(log), "--accounts", str(log.parent / "accounts.jsonl"), "--out", str(out)]
    )
    assert scan.exit_code == 0, scan.output
    assert f"{rows:,} exchanges" in scan.output
    assert {v.account_id for v in read_verdicts(out)} <= set(labels)


def test_duckdb_pass_reads_every_column_the_scan_reads(tmp_path: Path) -> None:
    gen = _small(tmp_path / "g", "exchanges.parquet", row_group=250)
    log = gen.exchanges_path
    columns = check_schema(log, EXCHANGES, pq.ParquetFile(log).schema_arrow)
    aggs = fullscale.duckdb_aggregates(columns)
    assert list(aggs) == [f.name for f in EXCHANGES.schema]  # every column, none skipped
    result = fullscale.duckdb_pass(log, columns, threads=1)
    assert result["rows"] == gen.exchanges and result["threads"] == 1
    assert result["peak_rss_bytes"] > 0 and result["query_s"] > 0
    head = fullscale.prefix_log(log, 567)
    assert pq.ParquetFile(head).metadata.num_rows == 567
    first = [e for b in read_exchanges(log) for e in b][:567]
    assert [e for b in read_exchanges(head) for e in b] == first
    assert fullscale.duckdb_pass(head, columns, threads=1)["rows"] == 567


def test_report_names_the_machine_the_log_and_both_passes() -> None:
    pass_ = {"wall_s": 10.0, "cpu_s": 9.0, "peak_rss_bytes": 2**30, "load_before": [1.5]}
    result = {
        "command": "python bench/fullscale.py --scale 0.01",
        "machine": {
            "date": "2026-01-01",
            "cpu": "CPU X",
            "cores": 2,
            "memory_gib": 8,
            "python": "3.11",
            "system": "Linux",
        },
        "log": {
            "scale": 0.01,
            "seed": 7,
            "exchanges": 100_000,
            "full_exchanges": 200_000,
            "prefix": True,
            "accounts": 300,
            "campaign_accounts": 240,
            "bytes": 2**24,
            "row_groups": 2,
            "exchanges_by_profile": {"chat": 75_000, "cot-harvest-hydra": 25_000},
        },
        "generation": {"seconds": 12.0, "cpu_s": 11.0, "peak_rss_bytes": 2**29},
        "columns": ["id", "ts"],
        "duckdb": {**pass_, "query_s": 0.5, "threads": 2, "duckdb": "1.0"},
        "scan": {**pass_, "replay_s": 9.5},
        "ratio_scan_duckdb": 20.0,
        "spark": None,
    }
    text = fullscale.report(result)
    assert "CPU X, 2 cores" in text and "first 100,000 exchanges (a prefix" in text
    assert "| 1,024 MiB | 20 |" in text and "| Spark (" not in text
    assert "25,000 exchanges, 25% of the log" in text
    assert json.dumps(result)  # the results file is plain JSON
