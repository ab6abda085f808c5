"""The ``store`` fixture: every contract test runs against DuckDB and PostgreSQL.

PostgreSQL comes from ``DISTILLWATCH_TEST_PG`` (default: the local test server); each test
gets a schema of its own, dropped afterwards. An unreachable server skips the PostgreSQL
tests, except in CI (``CI=true``) where it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from distillwatch.store import EventStore, open_store

PG_DSN = os.environ.get("DISTILLWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is mandatory in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test server's DSN, once it has answered."""
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


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty store of each backend (a file, or a schema of its own)."""
    if request.param == "duckdb":
        yield f"duckdb://{tmp_path / 'events.duckdb'}"
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"dw_test_{uuid.uuid4().hex[:16]}"
    yield f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    _drop_schema(dsn, schema)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    with open_store(store_url) as s:
        yield s
