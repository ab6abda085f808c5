"""The embedded DuckDB backend: one database file (or memory), bulk loads through Arrow."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from distillwatch.errors import StoreError
from distillwatch.store.base import Row, SqlStore, Table, one_line

_ARROW: dict[str, pa.DataType] = {
    "text": pa.string(),
    "json": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "int8": pa.int64(),
    "int4": pa.int32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
}
_views = itertools.count()


class DuckDBStore(SqlStore):
    """``EventStore`` in a DuckDB database; ``path`` is a file or ``":memory:"``."""

    backend = "DuckDB"
    types: ClassVar[dict[str, str]] = {
        "text": "TEXT",
        "json": "JSON",
        "ts": "TIMESTAMPTZ",
        "int8": "INT8",
        "int4": "INT4",
        "float8": "FLOAT8",
        "bool": "BOOLEAN",
    }
    # TIMESTAMPTZ values come back as naive UTC (as_utc tags them): no pytz needed.
    read_exprs: ClassVar[dict[str, str]] = {"ts": "timezone('UTC', {c})"}
    param = "?"
    errors = (duckdb.Error, pa.ArrowException, OverflowError)

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.Error as e:
            raise StoreError(f"DuckDB: cannot open {self.path!r}: {one_line(e)}") from e
        try:
            with self._guard(f"create tables in {self.path!r}"):
                for stmt in self.schema_sql():
                    self._con.execute(stmt)
        except StoreError:
            self._con.close()
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._con.execute(sql, list(params)).fetchall()

    def _load(self, table: Table, rows: list[Row], on_conflict: str) -> int:
        arrays = [
            pa.array(values, type=_ARROW[c.kind])
            for values, c in zip(zip(*rows, strict=True), table.columns, strict=True)
        ]
        view = f"_dw_stage_{next(_views)}"
        self._con.register(view, pa.Table.from_arrays(arrays, names=list(table.names)))
        try:
            cols = ", ".join(table.names)
            res = self._con.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {view} {on_conflict}"
            ).fetchone()
        finally:
            self._con.unregister(view)
        return int(res[0]) if res else 0

    def _stream(
        self, sql: str, params: Sequence[Any], batch_size: int
    ) -> Generator[list[Row], None, None]:
        # A cursor of its own: writes on the main connection do not cut the stream short.
        cur = self._con.cursor()
        try:
            result = cur.execute(sql, list(params))
            while rows := result.fetchmany(batch_size):
                yield rows
        finally:
            cur.close()

    def close(self) -> None:
        self._con.close()
