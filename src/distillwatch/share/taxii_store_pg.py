"""The TAXII server's PostgreSQL store (psycopg 3), for several server workers or replicas.

Connections follow the event store's conventions (``store.postgres_store``): an autocommit
connection, UTC, an optional ``?schema=NAME`` (created if missing), a redacted URL in every
message; ``psycopg`` is the optional extra ``distillwatch[postgres]`` and is imported when a
store is opened. Tables are prefixed ``taxii_`` so they can share a schema with the event store.

Writers serialise on one row (``taxii_clock``, ``SELECT … FOR UPDATE``) that holds the last
``date_added`` in microseconds: inside that lock a writer claims the bundle id, takes its
``date_added`` values and its sequence numbers, and commits before the next writer starts, so
``date_added`` strictly increases with the sequence and rows become visible in sequence order
(a reader paging by sequence never skips a row that commits later).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from distillwatch.share.errors import IntelError
from distillwatch.share.taxii_store import Row, TaxiiStore, to_us, version_of
from distillwatch.store.base import one_line, redact
from distillwatch.store.postgres_store import split_schema

if TYPE_CHECKING:
    import psycopg

_MISSING: Final = "a PostgreSQL TAXII store needs the extra: pip install 'distillwatch[postgres]'"
_SETUP_LOCK: Final = 0x64775F7461786969  # pg_advisory_xact_lock key: concurrent first starts
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS taxii_objects (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        type TEXT COLLATE "C" NOT NULL,
        version TEXT COLLATE "C" NOT NULL,
        date_added BIGINT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (collection, id, version)
    )""",
    "CREATE INDEX IF NOT EXISTS taxii_objects_collection_seq ON taxii_objects (collection, seq)",
    """CREATE TABLE IF NOT EXISTS taxii_bundles (
        id TEXT PRIMARY KEY, member TEXT NOT NULL, at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS taxii_statuses (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS taxii_clock (id INT PRIMARY KEY CHECK (id = 1), last_us BIGINT)",
    "INSERT INTO taxii_clock (id, last_us) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)


class PostgresTaxiiStore(TaxiiStore):
    """``TaxiiStore`` in a PostgreSQL database; one connection, reopened if it breaks."""

    param = "%s"
    prefix = "taxii_"
    added_us = True

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        try:
            import psycopg
        except ImportError:
            raise IntelError(_MISSING) from None
        self._errors = (psycopg.Error,)
        self.url = redact(url)
        self._dsn, self.schema = split_schema(url)
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            with self._guard("create tables"), self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SETUP_LOCK])
                for stmt in _SCHEMA:
                    self._conn.execute(stmt)
        except IntelError:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new autocommit connection with UTC time zone and the store's schema."""
        import psycopg
        from psycopg import sql

        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        except psycopg.Error as exc:
            raise IntelError(
                f"TAXII store: cannot connect to PostgreSQL at {self.url}: {one_line(exc)}"
            ) from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if self.schema is not None:
                name = sql.Identifier(self.schema)
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SETUP_LOCK])
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
                conn.execute(sql.SQL("SET search_path TO {}").format(name))
        except psycopg.Error as exc:
            conn.close()
            raise IntelError(
                f"TAXII store {self.url}: set up the session: {one_line(exc)}"
            ) from None
        return conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise IntelError(f"TAXII store {self.url}: {what}: {one_line(exc)}") from None

    @contextmanager
    def _session(self, what: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """The connection, for one operation at a time (reconnecting after a broken one)."""
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            with self._guard(what):
                yield self._conn

    def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._session("read") as conn:
            return conn.execute(sql, list(args)).fetchall()

    def _write(
        self,
        collection: str,
        claim: tuple[str, str] | None,
        objects: Iterable[dict[str, Any]],
        now: float,
    ) -> list[Row] | None:
        with self._session("write") as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT last_us FROM taxii_clock WHERE id = 1 FOR UPDATE")
            found = cur.fetchone()
            tick = int(found[0]) if found else 0
            if claim is not None:
                cur.execute(
                    "INSERT INTO taxii_bundles (id, member, at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    [*claim, now],
                )
                if cur.fetchone() is None:
                    return None  # accepted before: nothing was written
            out = []
            for obj in objects:
                tick = max(to_us(now), tick + 1)
                t = tick / 1_000_000
                version = version_of(obj, t)
                cur.execute(
                    "INSERT INTO taxii_objects (collection, id, type, version, date_added, body) "
                    "VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (collection, id, version) DO NOTHING RETURNING seq",
                    [collection, obj["id"], obj["type"], version, tick, json.dumps(obj)],
                )
                row = cur.fetchone()
                out.append(Row(int(row[0]) if row else 0, obj["id"], obj["type"], version, t, obj))
            cur.execute("UPDATE taxii_clock SET last_us = %s WHERE id = 1", [tick])
            return out

    def put_status(self, body: dict[str, Any]) -> None:
        with self._session("write a status") as conn:
            conn.execute(
                "INSERT INTO taxii_statuses (id, body) VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body",
                [body["id"], json.dumps(body)],
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
