"""The ``TaxiiStore`` contract: every test runs against SQLite and the real PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from distillwatch.share.errors import IntelError
from distillwatch.share.sign import parse_ts
from distillwatch.share.taxii import MEDIA, CollectionEntry, TaxiiConfig, TaxiiServer, UserEntry
from distillwatch.share.taxii_store import (
    Row,
    SqliteTaxiiStore,
    TaxiiStore,
    format_added,
    open_taxii_store,
)
from distillwatch.share.trust import TrustPolicy
from tests.share.taxii_backends import BACKENDS, store_url

T0 = 1_795_608_000.0  # 2026-11-25T12:00:00Z
COL = "col-1"


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as u:
        yield u


@pytest.fixture
def store(url: str) -> Iterator[TaxiiStore]:
    s = open_taxii_store(url)
    yield s
    s.close()


def obj(n: int | str, type_: str = "indicator", modified: str | None = None) -> dict[str, Any]:
    uid = uuid.uuid5(uuid.NAMESPACE_URL, str(n))
    out: dict[str, Any] = {"type": type_, "id": f"{type_}--{uid}", "spec_version": "2.1"}
    out["created"] = out["modified"] = modified or "2026-11-25T00:00:00.000Z"
    return out


def everything(store: TaxiiStore, collection: str = COL, **kw: Any) -> list[Row]:
    rows: list[Row] = []
    after = 0
    while True:
        page = store.page(collection, after_seq=after, limit=7, **kw)
        rows += page.rows
        if not page.more:
            return rows
        assert page.next is not None
        after = int(page.next)


def assert_ordered(rows: list[Row]) -> None:
    """Sequence, ``date_added`` and its RFC 3339 form all strictly increase."""
    for a, b in itertools.pairwise(rows):
        assert a.seq < b.seq
        assert a.date_added < b.date_added
        assert format_added(a.date_added) < format_added(b.date_added)


def test_date_added_strictly_increases_with_the_sequence(store: TaxiiStore) -> None:
    first = store.add(COL, [obj(i) for i in range(300)], T0)
    # a clock that stands still or goes back never makes date_added go back
    store.add(COL, [obj(i) for i in range(300, 600)], T0 - 60)
    store.add(COL, [obj(i) for i in range(600, 900)], T0 + 0.0000004)
    rows = everything(store)
    assert len(rows) == 900
    assert rows[0].date_added == T0 == first[0].date_added
    assert_ordered(rows)
    assert [r.seq for r in rows] == [r.seq for r in sorted(rows, key=lambda r: r.date_added)]


def test_pagination_and_added_after_see_every_object_once(store: TaxiiStore) -> None:
    store.add(COL, [obj(i) for i in range(50)], T0)
    store.add(COL, [obj(i) for i in range(50, 60)], T0 + 3600)
    rows = everything(store)
    assert [r.id for r in rows] == [obj(i)["id"] for i in range(60)]
    last = store.page(COL, after_seq=rows[-2].seq, limit=7)
    assert [r.id for r in last.rows] == [rows[-1].id] and not last.more and last.next is None
    for k in (0, 17, 49, 58, 59):  # as a TAXII client sends it back: the RFC 3339 string
        after = parse_ts(format_added(rows[k].date_added)).timestamp()
        got = everything(store, added_after=after)
        assert [r.id for r in got] == [r.id for r in rows[k + 1 :]]
    assert everything(store, added_after=T0 + 3599) == rows[50:]
    assert store.page(COL, limit=1000).rows == rows
    assert store.page("other", limit=10).rows == []


def test_match_filters_and_versions(store: TaxiiStore) -> None:
    old, new = "2026-11-25T00:00:00.000Z", "2026-11-26T00:00:00.000Z"
    store.add(COL, [obj(1, modified=old), obj(2, "campaign"), obj(3, "identity")], T0)
    store.add(COL, [obj(1, modified=new)], T0 + 1)
    again = store.add(COL, [obj(1, modified=new)], T0 + 2)  # the same version: left as it is
    assert again[0].seq == 0 and again[0].version == new
    assert len(everything(store, all_versions=True)) == 4
    latest = everything(store)
    assert [(r.id, r.version) for r in latest] == [
        (obj(2, "campaign")["id"], old),
        (obj(3, "identity")["id"], old),
        (obj(1)["id"], new),
    ]
    versions = everything(store, ids=[obj(1)["id"]], all_versions=True)
    assert [r.version for r in versions] == [old, new]
    assert [r.body["modified"] for r in versions] == [old, new]
    assert {r.type for r in everything(store, types=["campaign", "identity"])} == {
        "campaign",
        "identity",
    }
    assert everything(store, ids=[obj(1)["id"]], types=["campaign"]) == []
    assert everything(store, ids=["indicator--00000000-0000-4000-8000-000000000000"]) == []


def test_a_bundle_is_accepted_once(store: TaxiiStore) -> None:
    bid = "bundle--11111111-2222-4333-8444-555555555555"
    assert not store.seen_bundle(bid)
    rows = store.accept(COL, bid, "member-a", [obj(1), obj(2)], T0)
    assert rows is not None and [r.seq > 0 for r in rows] == [True, True]
    assert store.seen_bundle(bid)
    assert store.accept(COL, bid, "member-a", [obj(3)], T0) is None  # replayed: nothing stored
    assert store.accept("other", bid, "member-b", [obj(3)], T0) is None
    assert [r.id for r in everything(store)] == [obj(1)["id"], obj(2)["id"]]
    assert everything(store, "other") == []


def test_status_resources(store: TaxiiStore) -> None:
    assert store.status("nope") is None
    body = {"id": "s-1", "status": "complete", "success_count": 2, "x_member": "member-a"}
    store.put_status(body)
    assert store.status("s-1") == body
    store.put_status({**body, "success_count": 3})
    assert store.status("s-1") == {**body, "success_count": 3}


def test_reopened_store_keeps_everything_and_keeps_increasing(url: str) -> None:
    first = open_taxii_store(url)
    first.accept(COL, "bundle--a", "member-a", [obj(i) for i in range(5)], T0)
    first.put_status({"id": "s-1", "status": "complete"})
    first.close()
    second = open_taxii_store(url)
    try:
        assert second.seen_bundle("bundle--a") and second.status("s-1") is not None
        second.add(COL, [obj(i) for i in range(5, 10)], T0 - 10)
        rows = everything(second)
        assert len(rows) == 10
        assert_ordered(rows)
    finally:
        second.close()


def test_concurrent_writers_and_a_paging_reader(url: str) -> None:
    """Two writers (own connections) race, partly on the same bundles; a reader pages meanwhile.

    Every bundle is stored once, the reader sees every object exactly once, and ``date_added``
    strictly increases with the sequence.
    """
    per, size = 30, 4
    contested = [f"bundle--c{i}" for i in range(per)]

    def bundle(bid: str) -> list[dict[str, Any]]:
        return [obj(f"{bid}/{j}") for j in range(size)]

    writers = [open_taxii_store(url), open_taxii_store(url)]
    reader = open_taxii_store(url)
    accepted: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write(store: TaxiiStore, own: str) -> None:
        try:
            for i in range(per):
                for bid in (f"bundle--{own}{i}", contested[i]):
                    if store.accept(COL, bid, own, bundle(bid), T0) is not None:
                        accepted.append(bid)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    seen: list[Row] = []

    def read() -> None:
        after = 0
        try:
            while True:
                finished = done.is_set()  # read before the page: a last full pass follows
                page = reader.page(COL, after_seq=after, limit=5)
                seen.extend(page.rows)
                if page.rows:
                    after = page.rows[-1].seq
                elif finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(w, m)) for w, m in zip(writers, "ab", strict=True)
    ]
    paging = threading.Thread(target=read)
    try:
        paging.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        done.set()
        paging.join(120)
    finally:
        for s in (*writers, reader):
            s.close()
    assert not errors, errors
    assert sorted(accepted) == sorted({*accepted}) and len(accepted) == 3 * per
    assert set(contested) <= set(accepted)
    expected = {o["id"] for bid in accepted for o in bundle(bid)}
    assert len(seen) == len(expected) == 3 * per * size
    assert {r.id for r in seen} == expected  # every object, exactly once
    assert_ordered(seen)


def test_open_taxii_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_taxii_store(":memory:"), SqliteTaxiiStore)
    s = open_taxii_store(f"sqlite://{tmp_path / 'x.sqlite'}")
    assert isinstance(s, SqliteTaxiiStore) and (tmp_path / "x.sqlite").exists()
    s.close()
    with pytest.raises(IntelError, match="unsupported TAXII store"):
        open_taxii_store("mysql://h/db")
    with pytest.raises(IntelError, match="cannot open"):
        open_taxii_store(str(tmp_path / "missing" / "x.sqlite"))


def test_unreachable_postgres_is_one_line_without_the_password() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(IntelError) as err:
        open_taxii_store("postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2")
    msg = str(err.value)
    assert "cannot connect" in msg and "s3cret" not in msg and "***" in msg
    assert "\n" not in msg


def test_a_failing_store_is_a_taxii_error_not_a_traceback() -> None:
    store = SqliteTaxiiStore()
    config = TaxiiConfig(
        members="unused",
        users={"m": UserEntry(password_sha256=hashlib.sha256(b"pw").hexdigest())},
        collections=[CollectionEntry(id=COL, title="c", read=["m"], write=["m"])],
    )
    server = TaxiiServer(config, TrustPolicy("g", {}, {}), store=store)
    client = TestClient(server.app)
    url = f"/intel/collections/{COL}/objects/"
    assert client.get(url, auth=("m", "pw"), headers={"Accept": MEDIA}).status_code == 200
    store.close()  # the store fails from now on
    r = client.get(url, auth=("m", "pw"), headers={"Accept": MEDIA})
    assert r.status_code == 503
    body = r.json()
    assert body["title"] == "store unavailable" and body["http_status"] == "503"
