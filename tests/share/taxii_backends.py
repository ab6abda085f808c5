"""TAXII store backends for the tests: SQLite, and PostgreSQL in a fresh schema of its own.

PostgreSQL comes from ``DISTILLWATCH_TEST_PG`` (default: the local test server, trust auth,
database ``test``), as in ``tests/store/conftest.py``. An unreachable server skips the
PostgreSQL cases, except in CI (``CI=true``) where it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

PG_DSN = os.environ.get("DISTILLWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS: list[Any] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""``params`` for a fixture that yields one store URL per backend."""


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is mandatory in CI: {reason}")
    pytest.skip(reason)


def pg_dsn() -> str:
    """The test server's DSN, once it has answered (else skip, or fail in CI)."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'distillwatch[postgres]')")
    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        _unavailable(f"PostgreSQL unreachable at {PG_DSN}: {' '.join(str(e).split())}")
    return PG_DSN


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def store_url(backend: str, tmp: Path) -> Iterator[str]:
    """A URL to a fresh, empty TAXII store: a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield str(tmp / f"taxii-{uuid.uuid4().hex[:8]}.sqlite")
        return
    dsn = pg_dsn()
    schema = f"dw_taxii_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    finally:
        _drop_schema(dsn, schema)
