from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from distillwatch.log import (
    estimate_records,
    read_accounts,
    read_exchanges,
    read_labels,
    read_verdicts,
    write_records,
)
from distillwatch.records import Account, Action, Evidence, Label, PolicyRef, Verdict
from tests.factories import exchange

SPEC_EXAMPLES = Path(__file__).parents[3] / "shared" / "spec" / "examples"
FORMATS = ["x.jsonl", "x.jsonl.gz", "x.parquet"]


def _full() -> list:  # type: ignore[type-arg]
    return [
        exchange(
            1,
            text='Ünïcode ✓ and "quotes"',
            api_key_id="k1",
            user_agent="ua/1",
            endpoint="/v1/chat/completions",
            response_text="ok",
            prompt_tokens=3,
            completion_tokens=4,
            reasoning_tokens=0,
            latency_ms=12.5,
            ip="2001:db8::1",
        ),
        exchange(2, text=None, status=None),
    ]


@pytest.mark.parametrize("name", FORMATS)
def test_exchanges_round_trip_every_format(tmp_path: Path, name: str) -> None:
    records = _full()
    write_records(tmp_path / name, "exchanges", [records])
    back = [e for b in read_exchanges(tmp_path / name) for e in b]
    assert back == records


@pytest.mark.parametrize("name", FORMATS)
def test_other_kinds_round_trip(tmp_path: Path, name: str) -> None:
    acc = [
        Account(
            account_id="a",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            tier="free",
            verified=True,
            country="GB",
        )
    ]
    lab = [Label(account_id="a", label="attack", campaign_id="c1", profile="p")]
    ver = [
        Verdict(
            account_id="a",
            score=0.5,
            action=Action.THROTTLE,
            first_action_ts=datetime(2026, 1, 2, tzinfo=UTC),
            exchanges_before_action=3,
            reasons=["r1"],
            evidence=Evidence(
                exchanges=4,
                signals={"s": 1.0, "t": None},
                unavailable=["t"],
                policy=PolicyRef(name="p", version=1, hash="h", rule="r"),
            ),
        )
    ]
    for kind, records, reader in (("accounts", acc, read_accounts), ("labels", lab, read_labels)):
        path = tmp_path / f"{kind}-{name}"
        write_records(path, kind, [records])
        assert list(reader(path).values()) == records
    path = tmp_path / f"verdicts-{name}"
    write_records(path, "verdicts", [ver])
    assert read_verdicts(path) == ver


def test_reads_the_spec_examples() -> None:
    if not SPEC_EXAMPLES.exists():
        pytest.skip("shared/spec not beside the checkout")
    assert sum(len(b) for b in read_exchanges(SPEC_EXAMPLES / "exchanges.jsonl")) == 3
    assert set(read_accounts(SPEC_EXAMPLES / "accounts.jsonl")) == {"acct-7f3a", "acct-19c0"}
    assert read_verdicts(SPEC_EXAMPLES / "verdicts.jsonl")[1].exchanges_before_action == 12


@pytest.mark.parametrize("name", FORMATS)
def test_streams_in_batches(tmp_path: Path, name: str) -> None:
    records = [exchange(i) for i in range(1000)]
    write_records(tmp_path / name, "exchanges", [records[:500], records[500:]])
    sizes = [len(b) for b in read_exchanges(tmp_path / name, batch_size=128)]
    assert max(sizes) <= 128 and sum(sizes) == 1000


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(
        '{"id":"1","ts":"2026-03-01T00:00:00+02:00","account_id":"a","ip":"192.0.2.1",'
        '"model":"m","x_custom":{"anything":[1,2]}}\n\n'
    )
    (e,) = [e for b in read_exchanges(path) for e in b]
    assert e.ts == datetime(2026, 2, 28, 22, tzinfo=UTC)


def test_estimate_records(tmp_path: Path) -> None:
    write_records(tmp_path / "x.parquet", "exchanges", [[exchange(i) for i in range(10)]])
    assert estimate_records(tmp_path / "x.parquet") == 10
    write_records(tmp_path / "x.jsonl", "exchanges", [[exchange(i) for i in range(10)]])
    assert estimate_records(tmp_path / "x.jsonl") == 10
