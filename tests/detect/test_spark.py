"""``scan --engine spark`` gives the embedded scan's verdicts and campaigns, byte for byte.

Runs Spark ``local[2]`` (Java 17+, the ``[spark]`` extra). Without PySpark or Java the tests
skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from distillwatch.attribute.factory import engine_factory
from distillwatch.cli.main import app
from distillwatch.detect import replay
from distillwatch.errors import LogFormatError
from distillwatch.log import read_accounts, read_exchanges, write_records
from distillwatch.policy import load_policy

runner = CliRunner()


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    try:
        import pyspark  # noqa: F401

        if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
            raise ImportError("no java on PATH")
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Spark tests need PySpark and Java in CI: {e}")
        pytest.skip(f"PySpark or Java missing: {e}")
    from distillwatch.detect.spark import spark_session

    session = spark_session("local[2]", app="distillwatch tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    args = ["simulate", "--scenario", "default", "--scale", "0.05", "--days", "2"]
    result = runner.invoke(app, [*args, "--split", "test", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("scenario", ["evasive", "demo"])
def test_the_other_benchmark_scenarios_are_byte_identical(
    spark: Any, scenario: str, tmp_path: Path
) -> None:
    """``evasive`` and ``demo`` (``default`` is the ``sim`` fixture's, tested below)."""
    args = ["simulate", "--scenario", scenario, "--scale", "0.05", "--days", "1"]
    made = runner.invoke(app, [*args, "--split", "test", "--out", str(tmp_path / "sim")])
    assert made.exit_code == 0, made.output
    outputs = []
    for engine in ("embedded", "spark"):
        out = tmp_path / engine / "v.jsonl"
        out.parent.mkdir()
        done = _scan(
            tmp_path / "sim", tmp_path / "sim" / "exchanges.jsonl.gz", out, "--engine", engine
        )
        assert done.exit_code == 0, done.output
        outputs.append(out.read_bytes() + out.with_name("campaigns.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


def _scan(sim: Path, log: Path, out: Path, *extra: str) -> Any:
    args = ["scan", str(log), "--accounts", str(sim / "accounts.jsonl"), "-o", str(out), "-q"]
    return runner.invoke(app, [*args, *extra])


def test_cli_spark_scan_is_byte_identical(spark: Any, sim: Path, tmp_path: Path) -> None:
    log = sim / "exchanges.jsonl.gz"
    embedded, on_spark = tmp_path / "embedded" / "v.jsonl", tmp_path / "spark" / "v.jsonl"
    embedded.parent.mkdir()
    on_spark.parent.mkdir()
    first = _scan(sim, log, embedded)
    assert first.exit_code == 0, first.output
    second = _scan(sim, log, on_spark, "--engine", "spark", "--spark-master", "local[2]")
    assert second.exit_code == 0, second.output
    assert on_spark.read_bytes() == embedded.read_bytes()
    campaigns = (on_spark.parent / "campaigns.jsonl").read_bytes()
    assert campaigns == (embedded.parent / "campaigns.jsonl").read_bytes()
    assert campaigns.count(b"\n") >= 1  # a campaign is there to compare
    assert b'"action":"block"' in embedded.read_bytes()


def test_parquet_row_groups_and_part_files_read_in_parallel(
    spark: Any, sim: Path, tmp_path: Path
) -> None:
    """A directory of Parquet part files, each of several row groups, split across tasks,
    shuffled out of order: the same verdicts as the embedded replay of the ordered log."""
    from distillwatch.detect.spark import log_files, plan_splits, spark_replay

    exchanges = [e for batch in read_exchanges(sim / "exchanges.jsonl.gz") for e in batch]
    parts = tmp_path / "parts"
    parts.mkdir()
    half = len(exchanges) // 2
    for i, chunk in enumerate((exchanges[half:], exchanges[:half])):  # later part first
        groups = [chunk[j : j + 1000] for j in range(0, len(chunk), 1000)]
        write_records(parts / f"part-{i}.parquet", "exchanges", groups)
    splits = plan_splits(log_files(parts), rows=2500)
    assert len(splits) >= 4 and {s.path for s in splits} == {
        str(p) for p in sorted(parts.iterdir())
    }
    policy = load_policy(None)
    accounts = read_accounts(sim / "accounts.jsonl")
    factory = engine_factory(policy, accounts)
    ours = spark_replay(spark, parts, factory, split_rows=2500)
    reference = replay(lambda: iter([exchanges]), factory)
    assert ours.exchanges == len(exchanges) == reference.exchanges
    assert ours.splits == len(splits)
    assert ours.verdicts == reference.verdicts


def _broken_log(sim: Path, tmp_path: Path) -> Path:
    raw = gzip.decompress((sim / "exchanges.jsonl.gz").read_bytes()).decode()
    text = raw.rstrip("\n").split("\n")  # not splitlines(): prompts hold U+2028 and friends
    text[5] = text[5].replace('"ts":"', '"ts":"not a time ', 1)
    text[40] = "{not json"
    log = tmp_path / "broken.jsonl"
    log.write_text("\n".join(text) + "\n", encoding="utf-8")
    return log


def test_invalid_record_same_error_as_embedded(spark: Any, sim: Path, tmp_path: Path) -> None:
    log = _broken_log(sim, tmp_path)
    embedded = _scan(sim, log, tmp_path / "a.jsonl")
    on_spark = _scan(sim, log, tmp_path / "b.jsonl", "--engine", "spark")
    assert embedded.exit_code == on_spark.exit_code != 0
    assert "broken.jsonl:6" in embedded.output
    assert embedded.output.splitlines()[-1] in on_spark.output
    assert not (tmp_path / "b.jsonl").exists()


def test_skip_invalid_counts_as_embedded(spark: Any, sim: Path, tmp_path: Path) -> None:
    log = _broken_log(sim, tmp_path)
    a, b = tmp_path / "a" / "v.jsonl", tmp_path / "b" / "v.jsonl"
    a.parent.mkdir()
    b.parent.mkdir()
    embedded = _scan(sim, log, a, "--skip-invalid")
    on_spark = _scan(sim, log, b, "--skip-invalid", "--engine", "spark")
    assert embedded.exit_code == on_spark.exit_code == 0, on_spark.output
    assert "skipped 2 invalid record(s)" in embedded.output
    report = [line for line in embedded.output.split("\n") if "skipped" in line or "broken" in line]
    assert len(report) == 3
    for line in report:
        assert line in on_spark.output
    assert a.read_bytes() == b.read_bytes()


def test_missing_input_is_a_clear_error(spark: Any, tmp_path: Path) -> None:
    from distillwatch.detect.spark import log_files

    with pytest.raises(LogFormatError, match="no such file"):
        log_files(tmp_path / "nope")
    with pytest.raises(LogFormatError, match=r"no \.parquet"):
        log_files(tmp_path)


def test_spark_refuses_a_store() -> None:
    result = runner.invoke(app, ["scan", "--store", "x.duckdb", "--engine", "spark", "-q"])
    assert result.exit_code != 0
    assert "--engine spark reads a log file" in result.output
    result = runner.invoke(app, ["scan", "--table", "t", "-q"])
    assert result.exit_code != 0
    assert "--table needs --engine spark" in result.output


def test_table_input_is_byte_identical(spark: Any, sim: Path, tmp_path: Path) -> None:
    """``--table``: a view over Parquet (timestamps as Spark timestamps, nested JSON as text)."""
    exchanges = [e for batch in read_exchanges(sim / "exchanges.jsonl.gz") for e in batch]
    parquet = tmp_path / "log.parquet"
    write_records(parquet, "exchanges", [exchanges])
    spark.read.parquet(str(parquet)).createOrReplaceTempView("dw_exchanges")
    a, b, c = (tmp_path / n / "v.jsonl" for n in "abc")
    for p in (a, b, c):
        p.parent.mkdir()
    assert _scan(sim, parquet, a).exit_code == 0
    for relation, out in (("dw_exchanges", b), (f"parquet.`{parquet}`", c)):
        args = ["scan", "--table", relation, "--engine", "spark", "-o", str(out), "-q"]
        result = runner.invoke(app, [*args, "--accounts", str(sim / "accounts.jsonl")])
        assert result.exit_code == 0, result.output
    assert b.read_bytes() == a.read_bytes() == c.read_bytes()


def test_table_errors_name_the_record(spark: Any, tmp_path: Path) -> None:
    from distillwatch.detect.spark import spark_replay

    spark.sql("SELECT 'ex_1' AS id, 'acct' AS account_id").createOrReplaceTempView("dw_bad")
    with pytest.raises(LogFormatError, match="required column missing"):
        spark_replay(spark, "dw_bad", lambda: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(LogFormatError, match="cannot read"):
        spark_replay(spark, "no_such_table", lambda: None)  # type: ignore[arg-type, return-value]


def test_bad_inputs_fail_before_spark_starts(tmp_path: Path) -> None:
    """No fixture: these must fail in one line without starting Spark (or needing it)."""
    missing = runner.invoke(app, ["scan", str(tmp_path / "nope.parquet"), "--engine", "spark"])
    assert missing.exit_code == 2 and "no such file" in missing.output
    log = tmp_path / "log.jsonl"
    log.write_text("{}\n")
    args = ["scan", str(log), "--accounts", str(tmp_path / "nope.jsonl"), "--engine", "spark"]
    accounts = runner.invoke(app, args)
    assert accounts.exit_code == 2 and "nope.jsonl: no such file" in accounts.output
    assert "Traceback" not in missing.output + accounts.output
