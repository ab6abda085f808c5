"""The TAXII server's store: the ``TaxiiStore`` contract, its SQL core and the SQLite backend.

Two backends keep object versions by collection, accepted bundle ids (replay protection) and
status resources: SQLite (a file, or memory; the embedded default) and PostgreSQL
(``taxii_store_pg``, for a server with several workers or replicas). ``open_taxii_store``
picks one from the config's ``store`` value.

Each stored object version gets a ``date_added`` that strictly increases with its row
sequence, on a whole-microsecond grid (so its RFC 3339 form, with microseconds, strictly
increases too), taken inside the writing transaction while writers are serialised: rows
become visible in sequence order, so a reader paging by sequence (the opaque ``next`` token
is the last row's sequence) never skips a row that commits later.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from distillwatch.share.errors import IntelError
from distillwatch.store.base import one_line, redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    version TEXT NOT NULL,
    date_added REAL NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (collection, id, version)
);
CREATE INDEX IF NOT EXISTS objects_collection_seq ON objects (collection, seq);
CREATE TABLE IF NOT EXISTS bundles (id TEXT PRIMARY KEY, member TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS statuses (id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def format_added(t: float) -> str:
    """RFC 3339 with microseconds (TAXII's ``date_added``)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_us(t: float) -> int:
    """Seconds since the epoch → whole microseconds (the grid ``date_added`` lives on)."""
    return round(t * 1_000_000)


def new_status_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Row:
    seq: int
    id: str
    type: str
    version: str
    date_added: float
    body: dict[str, Any]


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    more: bool
    next: str | None


def open_taxii_store(url: str) -> TaxiiStore:
    """The store a config names: ``postgresql://…`` / ``postgres://…`` (optionally
    ``?schema=NAME``), else a SQLite file path, ``sqlite:///path`` or ``:memory:``."""
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    if scheme in ("postgresql", "postgres"):
        from distillwatch.share.taxii_store_pg import PostgresTaxiiStore

        return PostgresTaxiiStore(url)
    if scheme == "sqlite":
        return SqliteTaxiiStore(url[len("sqlite://") :] or ":memory:")
    if m:
        raise IntelError(
            f"unsupported TAXII store {redact(url)}: use a SQLite path or postgresql://…"
        )
    return SqliteTaxiiStore(url or ":memory:")


def version_of(obj: dict[str, Any], t: float) -> str:
    """An object's version: its ``modified``, else ``created``, else when it was added."""
    return str(obj.get("modified") or obj.get("created") or format_added(t))


class TaxiiStore(ABC):
    """What the TAXII server keeps: object versions, accepted bundle ids, status resources.

    ``add`` stores object versions (one already there is left as it is) with strictly
    increasing ``date_added``; ``accept`` does the same for a bundle's objects *and* records
    its id in one transaction, returning None (storing nothing) when the id was accepted
    before, so two writers racing with one bundle store it once. ``page`` returns object
    versions after ``after_seq`` (and ``added_after``), oldest first, the latest version of
    each unless ``all_versions``. The SQL reads are shared here; a backend supplies
    ``_read``, ``_write``, ``put_status`` and ``close``.
    """

    param: ClassVar[str]
    prefix: ClassVar[str] = ""
    """Table name prefix (PostgreSQL's tables may share a schema with the event store)."""
    added_us: ClassVar[bool] = False
    """Whether ``date_added`` is stored as integer microseconds (else REAL seconds)."""

    @abstractmethod
    def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _write(
        self,
        collection: str,
        claim: tuple[str, str] | None,
        objects: Iterable[dict[str, Any]],
        now: float,
    ) -> list[Row] | None:
        """Store ``objects`` in one transaction; with ``claim`` (bundle id, member), first
        record the bundle id — None when it was recorded before (nothing stored)."""

    @abstractmethod
    def put_status(self, body: dict[str, Any]) -> None:
        """Keep a status resource (replacing one with the same id)."""

    @abstractmethod
    def close(self) -> None: ...

    def add(self, collection: str, objects: Iterable[dict[str, Any]], now: float) -> list[Row]:
        """Store object versions (a version already there is left as it is)."""
        return self._write(collection, None, objects, now) or []

    def accept(
        self,
        collection: str,
        bundle_id: str,
        member: str,
        objects: Iterable[dict[str, Any]],
        now: float,
    ) -> list[Row] | None:
        """Record a bundle id and store its objects at once (None: accepted before)."""
        return self._write(collection, (bundle_id, member), objects, now)

    def page(
        self,
        collection: str,
        *,
        added_after: float | None = None,
        after_seq: int = 0,
        limit: int = 100,
        ids: Sequence[str] = (),
        types: Sequence[str] = (),
        all_versions: bool = False,
    ) -> Page:
        """One page of object versions, oldest first (the latest version of each by default)."""
        p, t = self.param, f"{self.prefix}objects"
        where = [f"o.collection = {p}", f"o.seq > {p}"]
        args: list[Any] = [collection, after_seq]
        if added_after is not None:
            where.append(f"o.date_added > {p}")
            # exact on the microsecond grid: halfway between the bound and the next tick
            bound = to_us(added_after)
            args.append(bound if self.added_us else (bound + 0.5) / 1_000_000)
        for column, values in (("id", ids), ("type", types)):
            if values:
                where.append(f"o.{column} IN ({', '.join([p] * len(values))})")
                args.extend(values)
        if not all_versions:
            where.append(
                f"o.version = (SELECT MAX(v.version) FROM {t} v "
                "WHERE v.collection = o.collection AND v.id = o.id)"
            )
        sql = (
            f"SELECT o.seq, o.id, o.type, o.version, o.date_added, o.body FROM {t} o "
            f"WHERE {' AND '.join(where)} ORDER BY o.seq LIMIT {p}"
        )
        found = self._read(sql, [*args, limit + 1])
        scale = 1_000_000 if self.added_us else 1
        rows = [Row(r[0], r[1], r[2], r[3], r[4] / scale, json.loads(r[5])) for r in found[:limit]]
        more = len(found) > limit
        return Page(rows, more, str(rows[-1].seq) if more and rows else None)

    def seen_bundle(self, bundle_id: str) -> bool:
        sql = f"SELECT 1 FROM {self.prefix}bundles WHERE id = {self.param}"
        return bool(self._read(sql, [bundle_id]))

    def status(self, status_id: str) -> dict[str, Any] | None:
        sql = f"SELECT body FROM {self.prefix}statuses WHERE id = {self.param}"
        found = self._read(sql, [status_id])
        return json.loads(found[0][0]) if found else None


class SqliteTaxiiStore(TaxiiStore):
    """SQLite (a file, or memory): one writer at a time (``BEGIN IMMEDIATE``), WAL on files."""

    param = "?"

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise IntelError(f"cannot open the TAXII store {path}: {exc}") from None
        self.lock = threading.Lock()

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        with self.lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise IntelError(f"TAXII store {self.path}: {what}: {one_line(exc)}") from None

    def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._guard("read"):
            return self.db.execute(sql, list(args)).fetchall()

    def _write(
        self,
        collection: str,
        claim: tuple[str, str] | None,
        objects: Iterable[dict[str, Any]],
        now: float,
    ) -> list[Row] | None:
        with self._guard("write"):
            self.db.execute("BEGIN IMMEDIATE")  # the write lock, across processes too
            try:
                out = self._insert(collection, claim, objects, now)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT" if out is not None else "ROLLBACK")
            return out

    def _insert(
        self,
        collection: str,
        claim: tuple[str, str] | None,
        objects: Iterable[dict[str, Any]],
        now: float,
    ) -> list[Row] | None:
        if claim is not None:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO bundles (id, member, at) VALUES (?, ?, ?)", (*claim, now)
            )
            if not cur.rowcount:
                return None
        last = self.db.execute(
            "SELECT date_added FROM objects ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        tick = to_us(last[0]) if last else 0
        out = []
        for obj in objects:
            tick = max(to_us(now), tick + 1)
            t = tick / 1_000_000
            version = version_of(obj, t)
            cur = self.db.execute(
                "INSERT OR IGNORE INTO objects (collection, id, type, version, date_added, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (collection, obj["id"], obj["type"], version, t, json.dumps(obj)),
            )
            seq = cur.lastrowid if cur.rowcount else 0
            out.append(Row(seq or 0, obj["id"], obj["type"], version, t, obj))
        return out

    def put_status(self, body: dict[str, Any]) -> None:
        with self._guard("write a status"):
            self.db.execute(
                "INSERT OR REPLACE INTO statuses (id, body) VALUES (?, ?)",
                (body["id"], json.dumps(body)),
            )

    def close(self) -> None:
        with self.lock:
            self.db.close()
