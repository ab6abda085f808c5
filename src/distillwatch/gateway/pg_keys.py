"""API keys → accounts from a PostgreSQL table (production), reloaded while serving.

The table holds the SHA-256 of each key, never the key itself::

    CREATE TABLE distillwatch_api_keys (
        key_sha256 text PRIMARY KEY,   -- lower-case hex SHA-256 of the API key
        account_id text NOT NULL,
        tier       text,               -- NULL: no tier
        key_id     text                -- what the log records as api_key_id (NULL: a hash)
    );
    INSERT INTO distillwatch_api_keys
    VALUES (encode(sha256('sk-live-alice-0001'::bytea), 'hex'), 'acct-alice', NULL, NULL);

``keys_store: {url: postgresql://..., table: distillwatch_api_keys, refresh_s: 30}`` in the
gateway config reads it at start-up (a problem stops the start, with one line naming the
table) and every ``refresh_s`` while serving, so keys added or removed take effect without a
restart; a failed refresh keeps the keys it had and is logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillwatch.errors import ConfigError
from distillwatch.gateway.keys import KeyEntry, KeyRing

log = logging.getLogger("distillwatch.gateway")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class KeysStoreSettings(BaseModel):
    """Where the gateway reads API keys from when they live in PostgreSQL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="postgresql://user@host:5432/db")
    table: str = Field("distillwatch_api_keys", description="table (or schema.table)")
    refresh_s: float = Field(30.0, ge=0.0, description="reload interval; 0: only at start-up")

    @field_validator("url")
    @classmethod
    def _postgres(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError(f"not a table name: {value!r} (letters, digits, _; schema.table)")
        return value


def _entry(row: tuple[Any, ...], table: str) -> tuple[str, KeyEntry]:
    digest, account, tier, kid = row
    where = f"PostgreSQL table {table}"
    shown = str(digest)[:12] if digest is not None else "NULL"
    if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
        raise ConfigError(f"key_sha256 {shown}… is not a hex SHA-256 (64 characters)", source=where)
    if not isinstance(account, str) or not account:
        raise ConfigError(f"row {shown}…: account_id must be a non-empty string", source=where)
    digest = digest.lower()
    return digest, KeyEntry(
        account_id=account,
        key_id=kid if isinstance(kid, str) and kid else f"key-{digest[:12]}",
        tier=tier if isinstance(tier, str) and tier else None,
    )


def load_pg_keys(settings: KeysStoreSettings) -> KeyRing:
    """Read the keys table; every problem is one ``ConfigError`` line (never the URL)."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        raise ConfigError(
            "reading API keys from PostgreSQL needs psycopg: pip install 'distillwatch[postgres]'",
            key="keys_store",
        ) from None
    query = sql.SQL("SELECT key_sha256, account_id, tier, key_id FROM {}").format(
        sql.Identifier(*settings.table.split("."))
    )
    try:
        with psycopg.connect(settings.url, connect_timeout=5) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error as e:
        detail = " ".join(str(e).split())
        raise ConfigError(
            f"cannot read API keys from PostgreSQL table {settings.table}: {detail}",
            key="keys_store",
        ) from None
    entries = dict(_entry(tuple(row), settings.table) for row in rows)
    if not entries:
        raise ConfigError(f"PostgreSQL table {settings.table} has no API keys", key="keys_store")
    return KeyRing.from_hashes(entries)


async def refresh_forever(ring: KeyRing, settings: KeysStoreSettings) -> None:
    """Reload the table every ``refresh_s`` into ``ring``; keep the old keys on failure."""
    while True:
        await asyncio.sleep(settings.refresh_s)
        try:
            fresh = await asyncio.to_thread(load_pg_keys, settings)
        except ConfigError as e:
            log.warning("API keys not refreshed (keeping %d): %s", len(ring), e)
            continue
        ring.replace(fresh)
