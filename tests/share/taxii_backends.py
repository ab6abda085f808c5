"""TAXII store backends for the tests: SQLite, and PostgreSQL in a fresh schema of its own.

PostgreSQL is the test server of ``tests/pg.py``: unreachable, it skips the PostgreSQL cases,
except in CI (``CI=true``) where it fails them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.pg import schema_url

BACKENDS: list[Any] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""``params`` for a fixture that yields one store URL per backend."""


@contextmanager
def store_url(backend: str, tmp: Path) -> Iterator[str]:
    """A URL to a fresh, empty TAXII store: a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield str(tmp / f"taxii-{uuid.uuid4().hex[:8]}.sqlite")
        return
    with schema_url("dw_taxii") as url:
        yield url
