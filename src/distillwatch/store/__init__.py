"""The event store: exchanges, accounts and verdicts in DuckDB (embedded) or PostgreSQL.

>>> with open_store("duckdb::memory:") as store:
...     store.count_exchanges()
0
"""

from __future__ import annotations

import re

from distillwatch.errors import StoreError
from distillwatch.store.base import EventStore, redact

__all__ = ["EventStore", "open_store"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HELP = "use duckdb:///path.duckdb, duckdb::memory:, a file path, or postgresql://..."


def open_store(url: str) -> EventStore:
    """Open (creating tables if missing) the store at ``url``.

    ``duckdb://PATH`` (``duckdb:///abs/x.duckdb``, ``duckdb://rel/x.duckdb``),
    ``duckdb::memory:``, a bare file path (DuckDB), or ``postgresql://...`` /
    ``postgres://...`` with an optional ``?schema=NAME`` (created if missing).
    """
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    if scheme in ("postgresql", "postgres"):
        from distillwatch.store.postgres_store import PostgresStore

        return PostgresStore(url)
    from distillwatch.store.duckdb_store import DuckDBStore

    if scheme == "duckdb":
        path = url[len("duckdb:") :]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise StoreError(f"no database path in store URL {url!r}: {_HELP}")
        return DuckDBStore(path)
    if m and url[m.end() :].startswith("//"):
        raise StoreError(f"unsupported store URL scheme {scheme!r} in {redact(url)}: {_HELP}")
    if not url.strip():
        raise StoreError(f"empty store URL: {_HELP}")
    return DuckDBStore(url)
