"""API keys from a PostgreSQL table: start-up load, lookups, reload while serving, bad rows.

Uses the test server (``DISTILLWATCH_TEST_PG``, default 127.0.0.1:5432/test); skipped when it
is unreachable, failed instead in CI (``CI=true``).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from distillwatch.errors import ConfigError
from distillwatch.gateway import load_config
from distillwatch.gateway.pg_keys import KeysStoreSettings, load_pg_keys
from tests.gateway.conftest import GatewayFactory
from tests.gateway.http import request
from tests.pg import PG_DSN, unavailable

KEY = "sk-pg-alice-00000001"
LATER = "sk-pg-carol-00000001"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def execute(sql: str, *params: Any) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql, params)


@pytest.fixture
def table() -> Iterator[str]:
    """A fresh keys table with alice's key (and bob's, with a tier and key id)."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'distillwatch[postgres]')")
    name = f"dw_keys_{uuid.uuid4().hex[:12]}"
    try:
        execute(
            f"CREATE TABLE {name} (key_sha256 text PRIMARY KEY, account_id text NOT NULL, "
            "tier text, key_id text)"
        )
    except psycopg.Error as e:
        unavailable(f"PostgreSQL unreachable at {PG_DSN}: {' '.join(str(e).split())}")
    execute(f"INSERT INTO {name} VALUES (%s, 'acct-alice', NULL, NULL)", sha(KEY))
    execute(
        f"INSERT INTO {name} VALUES (encode(sha256(%s::bytea), 'hex'), 'acct-bob', "
        "'enterprise', 'bob-ci')",
        "sk-pg-bob-0000000001",
    )
    yield name
    execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.postgres
def test_keys_load_from_the_table(table: str) -> None:
    ring = load_pg_keys(KeysStoreSettings(url=PG_DSN, table=table))
    alice = ring.lookup(KEY)
    assert alice is not None and alice.account_id == "acct-alice"
    assert alice.key_id == "key-" + sha(KEY)[:12]  # the same default as the keys file
    bob = ring.lookup("sk-pg-bob-0000000001")  # hashed by PostgreSQL's own sha256()
    assert bob is not None and (bob.account_id, bob.tier, bob.key_id) == (
        "acct-bob",
        "enterprise",
        "bob-ci",
    )
    assert ring.lookup("sk-pg-nobody-000001") is None
    assert ring.accounts()["acct-bob"].tier == "enterprise"


@pytest.mark.postgres
def test_bad_rows_and_missing_tables_are_one_line_errors(table: str) -> None:
    with pytest.raises(ConfigError, match="no_such_table"):
        load_pg_keys(KeysStoreSettings(url=PG_DSN, table="no_such_table"))
    execute(f"INSERT INTO {table} VALUES ('sk-raw-key-stored', 'acct-x', NULL, NULL)")
    with pytest.raises(ConfigError, match="not a hex SHA-256") as e:
        load_pg_keys(KeysStoreSettings(url=PG_DSN, table=table))
    assert "sk-raw-key-stored" not in str(e.value)  # at most a prefix of what is stored
    assert "\n" not in str(e.value)


def test_unreachable_server_is_a_config_error() -> None:
    settings = KeysStoreSettings(url="postgresql://nobody@127.0.0.1:1/none", table="t")
    with pytest.raises(ConfigError, match="cannot read API keys from PostgreSQL table t"):
        load_pg_keys(settings)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"keys_store\.table"):
        load_config(None, upstream="http://u/v1", keys_store={"url": PG_DSN, "table": "x; drop"})
    with pytest.raises(ConfigError, match=r"keys_store\.url"):
        load_config(None, upstream="http://u/v1", keys_store={"url": "mysql://h/db"})


def _chat(url: str, key: str) -> int:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return request("POST", url + "/v1/chat/completions", body, headers).status_code


@pytest.mark.postgres
def test_gateway_serves_keys_from_the_table_and_reloads_them(
    start_gateway: GatewayFactory, table: str
) -> None:
    gw = start_gateway(keys=None, keys_store={"url": PG_DSN, "table": table, "refresh_s": 0.2})
    assert _chat(gw.url, KEY) == 200
    assert _chat(gw.url, LATER) == 401
    execute(f"INSERT INTO {table} VALUES (%s, 'acct-carol', NULL, NULL)", sha(LATER))
    execute(f"DELETE FROM {table} WHERE account_id = 'acct-alice'")
    deadline = time.monotonic() + 10
    while _chat(gw.url, LATER) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _chat(gw.url, LATER) == 200  # added while serving
    assert _chat(gw.url, KEY) == 401  # removed while serving
    assert {e.account_id for e in gw.exchanges()} == {"acct-alice", "acct-carol"}
