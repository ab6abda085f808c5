"""Every kind of bad input gives one line naming file:line (or row) and the field."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillwatch.errors import LogFormatError
from distillwatch.log import SkipReport, read_exchanges, write_records
from tests.factories import exchange

GOOD = '{"id":"1","ts":"2026-03-01T00:00:00Z","account_id":"a","ip":"192.0.2.1","model":"m"}'


def _read(path: Path) -> int:
    return sum(len(b) for b in read_exchanges(path))


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"id":"1","ts":', None, "malformed JSON"),
        (
            '{"id":"1","ts":"2026-03-01T00:00:00Z","ip":"192.0.2.1","model":"m"}',
            "account_id",
            "missing required field",
        ),
        (
            '{"id":"1","ts":"2026-03-01 25:00","account_id":"a","ip":"192.0.2.1","model":"m"}',
            "ts",
            "invalid RFC3339",
        ),
        (
            '{"id":"1","ts":"2026-03-01T00:00:00","account_id":"a","ip":"192.0.2.1","model":"m"}',
            "ts",
            "timezone",
        ),
        (
            '{"id":"1","ts":"2026-03-01T00:00:00Z","account_id":7,"ip":"192.0.2.1","model":"m"}',
            "account_id",
            "expected str, got int",
        ),
        (
            '{"id":"1","ts":"2026-03-01T00:00:00Z","account_id":"a","ip":"999.1.1.1","model":"m"}',
            "ip",
            "not an IPv4 or IPv6 address",
        ),
        (
            '{"id":"1","ts":"2026-03-01T00:00:00Z","account_id":"a","ip":"192.0.2.1","model":"m",'
            '"prompt_tokens":-3}',
            "prompt_tokens",
            ">= 0",
        ),
        ("[1, 2]", None, "expected object"),
    ],
)
def test_bad_jsonl_line(tmp_path: Path, line: str, field: str | None, reason: str) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(f"{GOOD}\n{line}\n{GOOD}\n")
    with pytest.raises(LogFormatError) as info:
        _read(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:2: ")
    assert info.value.line == 2 and info.value.field == field
    assert reason.lower() in message.lower()


def test_skip_invalid_counts_and_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(f"{GOOD}\nnot json\n{GOOD.replace('192.0.2.1', 'x')}\n{GOOD}\n")
    skips = SkipReport()
    assert sum(len(b) for b in read_exchanges(path, skips=skips)) == 2
    assert skips.total == 2
    assert "skipped 2 invalid record(s)" in skips.summary()
    assert skips.examples[0].startswith(f"{path}:2:")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(LogFormatError, match="empty file"):
        _read(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"
    data = gzip.compress(("\n".join([GOOD] * 2000) + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LogFormatError, match="truncated or corrupt gzip") as info:
        _read(path)
    assert info.value.line is not None and info.value.line > 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="no such file"):
        _read(tmp_path / "nope.jsonl")


def test_parquet_wrong_column_type(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["1"],
                "ts": pa.array([0], pa.timestamp("us", tz="UTC")),
                "account_id": [42],
                "ip": ["192.0.2.1"],
                "model": ["m"],
            }
        ),
        path,
    )
    with pytest.raises(LogFormatError) as info:
        _read(path)
    assert info.value.field == "account_id"
    assert "int64" in str(info.value) and "expected string" in str(info.value)


def test_parquet_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table({"id": ["1"], "account_id": ["a"], "ip": ["192.0.2.1"], "model": ["m"]}), path
    )
    with pytest.raises(LogFormatError, match="required column missing") as info:
        _read(path)
    assert info.value.field == "ts"


def test_parquet_bad_row_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    write_records(path, "exchanges", [[exchange(i) for i in range(5)]])
    table = pq.read_table(path)
    ips = table.column("ip").to_pylist()
    ips[3] = "not-an-ip"
    pq.write_table(table.set_column(table.schema.get_field_index("ip"), "ip", pa.array(ips)), path)
    with pytest.raises(LogFormatError) as info:
        _read(path)
    assert str(info.value).startswith(f"{path}: row 4: field `ip`")


def test_not_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 garbage")
    with pytest.raises(LogFormatError, match="not a readable Parquet file"):
        _read(path)
