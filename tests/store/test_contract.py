"""The ``EventStore`` contract: every test runs against DuckDB and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from distillwatch.errors import StoreError
from distillwatch.records import Account, Action, Evidence, PolicyRef, Verdict
from distillwatch.store import EventStore, open_store
from tests.factories import T0, exchange


def test_new_store_is_empty(store: EventStore) -> None:
    assert store.count_exchanges() == 0
    assert list(store.iter_exchanges()) == []
    assert store.accounts() == {}
    assert store.verdicts() == []


def test_exchanges_round_trip_every_field(store: EventStore) -> None:
    full = exchange(
        1,
        api_key_id="key-9",
        ip="2001:db8::7",
        user_agent="openai-python/1.40.0",
        endpoint="/v1/chat/completions",
        request={
            "messages": [{"role": "user", "content": "Prove it step by step. 证明 ✓"}],
            "temperature": 0.0,
            "n": 2,
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        response_text="Step 1: …",
        prompt_tokens=12,
        completion_tokens=340,
        reasoning_tokens=200,
        status=200,
        latency_ms=812.5,
    )
    sparse = exchange(2, text=None, status=None)
    assert store.append_exchanges([full, sparse]) == 2
    got = [e for batch in store.iter_exchanges() for e in batch]
    assert got == [full, sparse]
    assert all(e.ts.tzinfo is not None and e.ts.utcoffset() == timedelta(0) for e in got)


def test_append_ignores_ids_already_stored(store: EventStore) -> None:
    assert store.append_exchanges([exchange(i) for i in range(5)]) == 5
    again = [exchange(i) for i in range(3, 8)]
    assert store.append_exchanges(again) == 3
    assert store.append_exchanges([exchange(9), exchange(9)]) == 1
    assert store.count_exchanges() == 9


def test_iter_is_time_ordered_then_by_id_whatever_the_insert_order(store: EventStore) -> None:
    ex = [exchange(i, account=f"a{i % 3}", seconds=(i * 7919) % 50) for i in range(200)]
    store.append_exchanges(ex[::-1])
    got = [e for batch in store.iter_exchanges(batch_size=17) for e in batch]
    assert [(e.ts, e.id) for e in got] == sorted((e.ts, e.id) for e in ex)


def test_iter_batches_respect_the_batch_size(store: EventStore) -> None:
    store.append_exchanges([exchange(i) for i in range(50)])
    sizes = [len(b) for b in store.iter_exchanges(batch_size=16)]
    assert sum(sizes) == 50
    assert max(sizes) <= 16
    assert all(s > 0 for s in sizes)


def test_iter_window_is_since_inclusive_until_exclusive(store: EventStore) -> None:
    store.append_exchanges([exchange(i) for i in range(10)])
    since, until = T0 + timedelta(seconds=3), T0 + timedelta(seconds=7)
    got = [e.id for b in store.iter_exchanges(since=since, until=until) for e in b]
    assert got == [exchange(i).id for i in range(3, 7)]


def test_iter_window_compares_instants_not_wall_clocks(store: EventStore) -> None:
    store.append_exchanges([exchange(i, seconds=i * 3600) for i in range(6)])
    plus2 = timezone(timedelta(hours=2))
    since = (T0 + timedelta(hours=2)).astimezone(plus2)
    got = [e.id for b in store.iter_exchanges(since=since) for e in b]
    assert got == [exchange(i).id for i in range(2, 6)]


def test_iter_rejects_naive_bounds_and_bad_batch_size(store: EventStore) -> None:
    with pytest.raises(StoreError, match="timezone-aware"):
        store.iter_exchanges(since=datetime(2026, 1, 1))
    with pytest.raises(StoreError, match="batch_size"):
        store.iter_exchanges(batch_size=0)


def test_accounts_upsert_last_write_wins(store: EventStore) -> None:
    a = Account(
        account_id="a1",
        created_at=T0,
        org_id="org-1",
        email_domain="example.com",
        payment_fingerprint="pf-1",
        country="DE",
        tier="free",
        verified=False,
    )
    store.put_accounts([a, Account(account_id="a2")])
    upgraded = Account(account_id="a1", created_at=T0, tier="pro", verified=True)
    store.put_accounts([upgraded])
    got = store.accounts()
    assert got == {"a1": upgraded, "a2": Account(account_id="a2")}


def test_verdicts_round_trip_and_upsert(store: EventStore) -> None:
    ref = PolicyRef(name="default", version=1, hash="abc", rule="score>=0.9")
    v1 = Verdict(account_id="a1", score=0.2, action=Action.MONITOR)
    v2 = Verdict(
        account_id="a1",
        score=0.97,
        action=Action.BLOCK,
        first_action_ts=(T0 + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-5))),
        exchanges_before_action=41,
        reasons=["71 % of prompts demand step-by-step reasoning; typical accounts: 2 %"],
        evidence=Evidence(
            exchanges=42, signals={"x": 1.5, "y": None}, unavailable=["y"], policy=ref
        ),
    )
    store.put_verdicts([v1])
    store.put_verdicts([v2, Verdict(account_id="a0", score=0.0, action=Action.ALLOW)])
    got = store.verdicts()
    assert [v.account_id for v in got] == ["a0", "a1"]
    assert got[1] == v2
    assert got[1].first_action_ts == T0 + timedelta(minutes=5)


def test_data_survives_reopening(store_url: str) -> None:
    with open_store(store_url) as s:
        s.append_exchanges([exchange(i) for i in range(3)])
        s.put_accounts([Account(account_id="acct-1", tier="pro")])
    with open_store(store_url) as s:
        assert s.count_exchanges() == 3
        assert s.accounts()["acct-1"].tier == "pro"


def test_large_batch_streams(store: EventStore) -> None:
    n = 20_000
    start = datetime(2026, 5, 1, tzinfo=UTC)
    store.append_exchanges(
        [exchange(i, account=f"a{i % 97}", ts=start + timedelta(milliseconds=i)) for i in range(n)]
    )
    count = 0
    last = None
    for batch in store.iter_exchanges(batch_size=4096):
        assert len(batch) <= 4096
        for e in batch:
            assert last is None or (e.ts, e.id) >= last
            last = (e.ts, e.id)
        count += len(batch)
    assert count == n == store.count_exchanges()


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="scheme"):
        open_store("mysql://localhost/x")
    with pytest.raises(StoreError, match="empty"):
        open_store("  ")


def test_unreachable_postgres_is_a_store_error_without_password() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as info:
        open_store("postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=1")
    assert "s3cret" not in str(info.value)
    assert "\n" not in str(info.value)
