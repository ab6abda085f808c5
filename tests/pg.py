"""The PostgreSQL test server, for every test that needs one.

``DISTILLWATCH_TEST_PG`` names it (default: the local server, trust auth, database ``test``).
An unreachable server (or a missing psycopg) skips the test, except in CI (``CI=true``), where
PostgreSQL is mandatory and the test fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

PG_DSN = os.environ.get("DISTILLWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is mandatory in CI: {reason}")
    pytest.skip(reason)


def pg_dsn() -> str:
    """The test server's DSN, once it has answered."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'distillwatch[postgres]')")
    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        unavailable(f"PostgreSQL unreachable at {PG_DSN}: {' '.join(str(e).split())}")
    return PG_DSN


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def schema_url(prefix: str) -> Iterator[str]:
    """The test server's DSN with ``?schema=`` a fresh schema of its own, dropped afterwards."""
    dsn = pg_dsn()
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    finally:
        drop_schema(dsn, schema)
