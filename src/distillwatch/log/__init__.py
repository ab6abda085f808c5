"""Exchange-log formats (spec v1): JSON Lines, gzip JSON Lines and Parquet, streamed in batches.

>>> from distillwatch.log import read_exchanges  # doctest: +SKIP
>>> for batch in read_exchanges("traffic.jsonl.gz"):  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import msgspec

from distillwatch.errors import LogFormatError
from distillwatch.log.jsonl import JsonlWriter, read_jsonl
from distillwatch.log.kinds import ACCOUNTS, EXCHANGES, KINDS, LABELS, VERDICTS, RecordKind
from distillwatch.log.parquet import ParquetWriter, read_parquet
from distillwatch.log.skips import SkipReport
from distillwatch.records import Account, Exchange, Label, Verdict

__all__ = [
    "KINDS",
    "LogWriter",
    "SkipReport",
    "is_parquet",
    "open_writer",
    "read_accounts",
    "read_exchanges",
    "read_labels",
    "read_records",
    "read_verdicts",
    "write_records",
]

DEFAULT_BATCH = 8192


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def read_records(
    path: str | Path,
    kind: RecordKind | str,
    *,
    batch_size: int = DEFAULT_BATCH,
    skips: SkipReport | None = None,
) -> Iterator[list[Any]]:
    """Stream validated records of one kind from a JSONL(.gz) or Parquet file."""
    path = Path(path)
    kind = KINDS[kind] if isinstance(kind, str) else kind
    if not path.exists():
        raise LogFormatError("no such file", source=path)
    if not path.is_file():
        raise LogFormatError("not a regular file", source=path)
    if is_parquet(path):
        return read_parquet(path, kind, batch_size=batch_size, skips=skips)
    return read_jsonl(path, kind, batch_size=batch_size, skips=skips)


def read_exchanges(
    path: str | Path, *, batch_size: int = DEFAULT_BATCH, skips: SkipReport | None = None
) -> Iterator[list[Exchange]]:
    """Exchanges in file order (see ``distillwatch.log.ordering`` for time order)."""
    return read_records(path, EXCHANGES, batch_size=batch_size, skips=skips)


def read_accounts(path: str | Path, *, skips: SkipReport | None = None) -> dict[str, Account]:
    """The accounts file as a dict by ``account_id`` (it is O(accounts), not O(exchanges))."""
    return {a.account_id: a for batch in read_records(path, ACCOUNTS, skips=skips) for a in batch}


def read_labels(path: str | Path) -> dict[str, Label]:
    return {r.account_id: r for batch in read_records(path, LABELS) for r in batch}


def read_verdicts(path: str | Path) -> list[Verdict]:
    return [v for batch in read_records(path, VERDICTS) for v in batch]


class LogWriter(Protocol):
    def write(self, records: Iterable[msgspec.Struct]) -> None: ...
    def close(self) -> None: ...


class _Closing:
    """Context-manager wrapper so ``with open_writer(...) as w:`` always closes the file."""

    def __init__(self, inner: LogWriter) -> None:
        self.inner = inner

    def write(self, records: Iterable[msgspec.Struct]) -> None:
        self.inner.write(records)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> _Closing:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_writer(path: str | Path, kind: RecordKind | str) -> _Closing:
    """A writer chosen by file name: ``.parquet``, ``.jsonl.gz`` or ``.jsonl``."""
    path = Path(path)
    kind = KINDS[kind] if isinstance(kind, str) else kind
    path.parent.mkdir(parents=True, exist_ok=True)
    return _Closing(ParquetWriter(path, kind) if is_parquet(path) else JsonlWriter(path))


def write_records(
    path: str | Path, kind: RecordKind | str, batches: Iterable[Iterable[msgspec.Struct]]
) -> None:
    """Write every batch to ``path`` (format from its name)."""
    with open_writer(path, kind) as w:
        for batch in batches:
            w.write(batch)


# Re-exported for callers that name kinds directly.
EXCHANGE_KIND, ACCOUNT_KIND, LABEL_KIND, VERDICT_KIND = EXCHANGES, ACCOUNTS, LABELS, VERDICTS


def estimate_records(path: str | Path) -> int | None:
    """Number of records, exact for Parquet, estimated from the first MiB for JSON Lines.

    Only for progress bars and ETAs; None when it cannot be told.
    """
    from distillwatch.log.jsonl import open_binary

    path = Path(path)
    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        size = path.stat().st_size
        with open_binary(path) as f:
            sample = f.read(1 << 20)
            inner = getattr(f, "fileobj", None)  # gzip: the compressed stream underneath
            consumed = int(inner.tell()) if inner is not None else len(sample)
        lines = sample.count(b"\n")
        if not lines or not consumed:
            return None
        return max(lines, int(lines * size / consumed)) if len(sample) == 1 << 20 else lines
    except (OSError, EOFError, ValueError):
        return None
