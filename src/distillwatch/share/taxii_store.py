"""The TAXII server's embedded store: SQLite (a file, or memory), one table of object versions.

Each stored object version gets a ``date_added`` that strictly increases with its row id, so
``added_after`` filters by time and pagination continues after the last row returned (the
opaque ``next`` token is that row id). Accepted bundle ids are kept for replay protection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from distillwatch.share.errors import IntelError

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
CREATE TABLE IF NOT EXISTS bundles (id TEXT PRIMARY KEY, member TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS statuses (id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


def format_added(t: float) -> str:
    """RFC 3339 with microseconds (TAXII's ``date_added``)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


class TaxiiStore:
    """Object versions by collection, accepted bundle ids and status resources."""

    def __init__(self, path: str = ":memory:") -> None:
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise IntelError(f"cannot open the TAXII store {path}: {exc}") from None
        self.lock = threading.Lock()
        row = self.db.execute("SELECT MAX(date_added) FROM objects").fetchone()
        self._last = float(row[0]) if row and row[0] is not None else 0.0

    def add(self, collection: str, objects: Iterable[dict[str, Any]], now: float) -> list[Row]:
        """Store object versions (a version already there is left as it is)."""
        out = []
        with self.lock:
            self.db.execute("BEGIN")
            try:
                for obj in objects:
                    t = self._last = max(now, self._last + 1e-6)
                    version = str(obj.get("modified") or obj.get("created") or format_added(t))
                    cur = self.db.execute(
                        "INSERT OR IGNORE INTO objects (collection, id, type, version, date_added,"
                        " body) VALUES (?, ?, ?, ?, ?, ?)",
                        (collection, obj["id"], obj["type"], version, t, json.dumps(obj)),
                    )
                    seq = cur.lastrowid if cur.rowcount else 0
                    out.append(Row(seq or 0, obj["id"], obj["type"], version, t, obj))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return out

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
        where = ["o.collection = ?", "o.seq > ?"]
        args: list[Any] = [collection, after_seq]
        if added_after is not None:
            where.append("o.date_added > ?")
            args.append(added_after)
        if ids:
            where.append(f"o.id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if types:
            where.append(f"o.type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if not all_versions:
            where.append(
                "o.version = (SELECT MAX(v.version) FROM objects v "
                "WHERE v.collection = o.collection AND v.id = o.id)"
            )
        sql = (
            "SELECT seq, id, type, version, date_added, body FROM objects o "
            f"WHERE {' AND '.join(where)} ORDER BY o.seq LIMIT ?"
        )
        with self.lock:
            found = self.db.execute(sql, [*args, limit + 1]).fetchall()
        rows = [Row(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in found[:limit]]
        more = len(found) > limit
        return Page(rows, more, str(rows[-1].seq) if more and rows else None)

    def seen_bundle(self, bundle_id: str) -> bool:
        with self.lock:
            row = self.db.execute("SELECT 1 FROM bundles WHERE id = ?", (bundle_id,)).fetchone()
        return row is not None

    def add_bundle(self, bundle_id: str, member: str, now: float) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR IGNORE INTO bundles (id, member, at) VALUES (?, ?, ?)",
                (bundle_id, member, now),
            )

    def put_status(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO statuses (id, body) VALUES (?, ?)",
                (body["id"], json.dumps(body)),
            )

    def status(self, status_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute("SELECT body FROM statuses WHERE id = ?", (status_id,)).fetchone()
        return json.loads(row[0]) if row else None


def new_status_id() -> str:
    return str(uuid.uuid4())
