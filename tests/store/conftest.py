"""The ``store`` fixture: every contract test runs against DuckDB and PostgreSQL.

PostgreSQL is the test server of ``tests/pg.py``; each test gets a schema of its own, dropped
afterwards. An unreachable server skips the PostgreSQL tests, except in CI (``CI=true``) where
it fails them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from distillwatch.store import EventStore, open_store
from tests import pg


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty store of each backend (a file, or a schema of its own)."""
    if request.param == "duckdb":
        yield f"duckdb://{tmp_path / 'events.duckdb'}"
        return
    with pg.schema_url("dw_test") as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    with open_store(store_url) as s:
        yield s
