"""The JSON Lines reader splits lines from whole chunks: the same records and line numbers as
reading the file line by line, wherever the chunk boundaries fall."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from distillwatch.errors import LogFormatError
from distillwatch.log import SkipReport, jsonl, read_exchanges


def _line(i: int, ip: str = "192.0.2.1") -> str:
    return (
        f'{{"id":"e{i}","ts":"2026-03-01T00:00:{i % 60:02d}Z","account_id":"a","ip":"{ip}",'
        '"model":"m"}'
    )


def _ids(path: Path, batch_size: int = 3, skips: SkipReport | None = None) -> list[list[str]]:
    return [[e.id for e in b] for b in read_exchanges(path, batch_size=batch_size, skips=skips)]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_records_and_batches_do_not_depend_on_the_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(jsonl, "CHUNK", chunk)
    path = tmp_path / "log.jsonl"
    # blank lines, a whitespace-only line, CRLF and no newline at the end
    text = f"{_line(1)}\n\n{_line(2)}\r\n   \n" + "\n".join(_line(i) for i in range(3, 8))
    path.write_bytes(text.encode())
    assert _ids(path) == [["e1", "e2", "e3"], ["e4", "e5", "e6"], ["e7"]]


@pytest.mark.parametrize("chunk", [5, 100, 1 << 20])
def test_errors_name_the_same_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(jsonl, "CHUNK", chunk)
    path = tmp_path / "log.jsonl"
    lines = [_line(1), "", _line(2), _line(3, ip="192.0.2.300"), _line(4), '{"id":']
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LogFormatError) as info:
        _ids(path)
    assert info.value.line == 4 and info.value.field == "ip"
    skips = SkipReport()
    assert [e for b in _ids(path, skips=skips) for e in b] == ["e1", "e2", "e4"]
    assert skips.total == 2
    assert [x.split(": ", 1)[0].rsplit(":", 1)[1] for x in skips.examples] == ["4", "6"]


def test_a_truncated_gzip_names_the_last_complete_line(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(_line(i) for i in range(3000)) + "\n").encode())
    cut = data[: len(data) // 2]
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(cut)
    complete = zlib.decompressobj(31).decompress(cut).count(b"\n")  # what line-by-line reads
    with pytest.raises(LogFormatError, match=f"after line {complete}$") as info:
        _ids(path, batch_size=8192)
    assert info.value.line == complete + 1
