"""Parquet readers and writers with the spec's column names, streamed by record batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from distillwatch.errors import LogFormatError
from distillwatch.log.checks import check_record
from distillwatch.log.errors_text import split_validation_message
from distillwatch.log.kinds import RecordKind
from distillwatch.log.skips import SkipReport

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.Encoder().encode

_FAMILIES: list[tuple[Callable[[pa.DataType], bool], Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_string, lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
    (pa.types.is_timestamp, pa.types.is_timestamp, "timestamp"),
    (pa.types.is_integer, pa.types.is_integer, "integer"),
    (pa.types.is_floating, lambda t: pa.types.is_floating(t) or pa.types.is_integer(t), "number"),
    (pa.types.is_boolean, pa.types.is_boolean, "boolean"),
    (pa.types.is_list, lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "list"),
]


def _expected(
    kind: RecordKind, name: str, want: pa.DataType
) -> tuple[Callable[[pa.DataType], bool], str]:
    if name in kind.json_columns:

        def nested(t: pa.DataType) -> bool:
            return bool(
                pa.types.is_string(t)
                or pa.types.is_large_string(t)
                or pa.types.is_struct(t)
                or pa.types.is_map(t)
            )

        return nested, "JSON string or struct"
    for match_want, accept, label in _FAMILIES:
        if match_want(want):
            return accept, label
    raise AssertionError(f"no type family for {want}")  # pragma: no cover - schema is ours


def check_schema(path: Path, kind: RecordKind, schema: pa.Schema) -> list[str]:
    """Raise on a missing required column or a column of the wrong type; return columns to read."""
    names = set(schema.names)
    for name in sorted(kind.required - names):
        raise LogFormatError("required column missing", source=path, field=name)
    columns = []
    for f in kind.schema:
        if f.name not in names:
            continue
        got = schema.field(f.name).type
        accept, label = _expected(kind, f.name, f.type)
        if not (accept(got) or pa.types.is_null(got)):
            raise LogFormatError(
                f"column has type {got}, expected {label}", source=path, field=f.name
            )
        columns.append(f.name)
    return columns


def read_parquet(
    path: Path,
    kind: RecordKind,
    *,
    batch_size: int,
    skips: SkipReport | None,
    row_groups: Sequence[int] | None = None,
) -> Iterator[list[Any]]:
    """Yield validated records in file order; errors name the 1-based row and the field.

    ``row_groups`` (consecutive, ascending) reads only those: how a parallel reader splits
    one file; rows keep their numbers in the whole file.
    """
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise LogFormatError(f"not a readable Parquet file ({e})", source=path) from e
    columns = check_schema(path, kind, pf.schema_arrow)
    if pf.metadata.num_rows == 0:
        raise LogFormatError(f"empty file: no {kind.name} records", source=path)
    row = 0
    if row_groups:
        row = sum(pf.metadata.row_group(i).num_rows for i in range(row_groups[0]))
    try:
        for rb in pf.iter_batches(batch_size=batch_size, columns=columns, row_groups=row_groups):
            records = decode_batch(rb, kind, source=path, first_row=row + 1, skips=skips)
            row += rb.num_rows
            if records:
                yield records
    except (pa.ArrowException, OSError) as e:
        raise LogFormatError(
            f"corrupt Parquet data after row {row} ({e})", source=path, line=row + 1, unit="row"
        ) from e


def decode_batch(
    rb: pa.RecordBatch,
    kind: RecordKind,
    *,
    source: str | Path,
    first_row: int | None,
    skips: SkipReport | None,
) -> list[Any]:
    """Validated records of one Arrow batch with the spec's columns (Parquet, a Spark table).

    Errors name the 1-based row, counting from ``first_row``; with ``first_row=None`` (rows
    without a stable number, as in a table) they name the record's ``id`` instead.
    """
    records = []
    for i, rec in enumerate(_rows(rb)):
        try:
            for name in kind.json_columns:
                if isinstance(rec.get(name), str):
                    rec[name] = _decode_json_text(rec[name], name)
            obj = msgspec.convert(rec, kind.type)
            check_record(kind, obj)
        except (msgspec.ValidationError, LogFormatError) as e:
            if first_row is None:
                error = _row_error(f"{source} (id {rec.get('id')!r})", None, e)
            else:
                error = _row_error(source, first_row + i, e)
            if skips is None:
                raise error from e
            skips.add(error)
            continue
        records.append(obj)
    return records


def _rows(rb: pa.RecordBatch) -> Iterator[dict[str, Any]]:
    cols: list[list[Any]] = []
    for col in rb.columns:
        if pa.types.is_timestamp(col.type) and col.type.tz is None:
            col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))  # Parquet convention: UTC
        cols.append(col.to_pylist())
    names = rb.schema.names
    for values in zip(*cols, strict=True):
        yield dict(zip(names, values, strict=True))


def _decode_json_text(text: str, name: str) -> Any:
    try:
        return _json_decode(text)
    except msgspec.DecodeError as e:
        raise LogFormatError(f"malformed JSON text ({e})", source="", field=name) from e


def _row_error(path: str | Path, row: int | None, e: Exception) -> LogFormatError:
    if isinstance(e, LogFormatError):
        return LogFormatError(e.reason, source=path, line=row, field=e.field, unit="row")
    field, reason = split_validation_message(str(e))
    return LogFormatError(reason, source=path, line=row, field=field, unit="row")


class ParquetWriter:
    """Write records with the kind's Parquet schema (nested objects as JSON text)."""

    def __init__(self, path: Path, kind: RecordKind) -> None:
        self.kind = kind
        self._writer = pq.ParquetWriter(path, kind.schema, compression="zstd")

    def write(self, records: Iterable[msgspec.Struct]) -> None:
        rows = msgspec.to_builtins(list(records), builtin_types=(datetime,))
        for row in rows:
            for name in self.kind.json_columns:
                if row.get(name) is not None:
                    row[name] = _json_encode(row[name]).decode()
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self.kind.schema))

    def close(self) -> None:
        self._writer.close()
