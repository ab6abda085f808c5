"""The PostgreSQL backend (psycopg 3): COPY-staged bulk loads, server-side cursor reads.

``psycopg`` is the optional extra ``distillwatch[postgres]``; it is imported when a store
is opened, never when this module is.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from distillwatch.errors import StoreError
from distillwatch.store.base import TABLES, Row, SqlStore, Table, one_line, redact

if TYPE_CHECKING:
    import psycopg

_MISSING = "PostgreSQL support needs the extra: pip install 'distillwatch[postgres]'"
_cursors = itertools.count()


def split_schema(url: str) -> tuple[str, str | None]:
    """``(dsn, schema)``: the URL without its ``schema`` query parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if not schemas:
        return url, None
    if not schemas[-1]:
        raise StoreError(f"PostgreSQL: empty schema name in {redact(url)}")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[-1]


def _stage(table: Table) -> str:
    return f"_dw_stage_{table.name}"


class PostgresStore(SqlStore):
    """``EventStore`` in a PostgreSQL database, optionally in its own schema (``?schema=``)."""

    backend = "PostgreSQL"
    types: ClassVar[dict[str, str]] = {
        "text": 'TEXT COLLATE "C"',  # id order as in DuckDB and Python: by code point
        "json": "JSONB",
        "ts": "TIMESTAMPTZ",
        "int8": "INT8",
        "int4": "INT4",
        "float8": "FLOAT8",
        "bool": "BOOLEAN",
    }
    read_exprs: ClassVar[dict[str, str]] = {"json": "{c}::text"}  # decoded by msgspec
    param = "%s"

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise StoreError(_MISSING) from e
        self.errors = (psycopg.Error,)
        self.url = redact(url)
        self._dsn, self.schema = split_schema(url)
        self._timeout = connect_timeout
        self._conn = self._connect()
        try:
            with self._guard("create tables"), self._conn.transaction():
                for stmt in self.schema_sql():
                    self._conn.execute(stmt)
                self._conn.execute(
                    "CREATE INDEX IF NOT EXISTS exchanges_ts_id ON exchanges(ts, id)"
                )
                for t in TABLES:
                    self._conn.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {_stage(t)} (LIKE {t.name}) "
                        "ON COMMIT DELETE ROWS"
                    )
        except StoreError:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[Row]:
        """A new autocommit connection with UTC time zone and the store's schema."""
        import psycopg
        from psycopg import sql

        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        except psycopg.Error as e:
            raise StoreError(f"PostgreSQL: cannot connect to {self.url}: {one_line(e)}") from e
        try:
            with self._guard("set up the session"):
                conn.execute("SET TIME ZONE 'UTC'")
                if self.schema is not None:
                    name = sql.Identifier(self.schema)
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
                    conn.execute(sql.SQL("SET search_path TO {}").format(name))
        except StoreError:
            conn.close()
            raise
        return conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.execute(sql, list(params))
        return cur.fetchall() if cur.description is not None else []

    def _load(self, table: Table, rows: list[Row], on_conflict: str) -> int:
        cols = ", ".join(table.names)
        with self._conn.transaction(), self._conn.cursor() as cur:
            with cur.copy(f"COPY {_stage(table)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {_stage(table)} "
                f"{on_conflict}"
            )
            return max(cur.rowcount, 0)

    def _stream(
        self, sql: str, params: Sequence[Any], batch_size: int
    ) -> Generator[list[Row], None, None]:
        # A connection of its own: the read transaction never wraps the store's writes.
        name = f"dw_iter_{next(_cursors)}"
        with self._connect() as conn, conn.transaction(), conn.cursor(name=name) as cur:
            cur.itersize = batch_size
            cur.execute(sql, list(params))
            while rows := cur.fetchmany(batch_size):
                yield rows

    def close(self) -> None:
        self._conn.close()
