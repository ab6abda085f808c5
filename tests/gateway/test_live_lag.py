"""The engine is off the request path: decisions are read, never waited for; lag is bounded."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from distillwatch.detect import Engine
from distillwatch.gateway.durable_log import GroupCommitLog, SegmentSink
from distillwatch.gateway.live import LiveEngine
from distillwatch.records import Action, Decision, Exchange
from tests.factories import exchange
from tests.gateway.conftest import ALICE, GatewayFactory, Running
from tests.gateway.http import request
from tests.gateway.policies import FixedPolicy, fixed_app


class RecordingEngine(Engine):
    """An engine that remembers the order it observed exchanges in."""

    def __init__(self, action: Action) -> None:
        super().__init__([], FixedPolicy(action))
        self.seen: list[str] = []

    def observe(self, ex: Exchange) -> Decision:
        self.seen.append(ex.id)
        return super().observe(ex)


def test_block_applies_to_the_next_request_once_the_exchange_is_observed() -> None:
    async def go() -> None:
        lags: list[float] = []
        live = LiveEngine(RecordingEngine(Action.BLOCK), on_lag=lags.append)
        live.start()
        assert live.decision("acct-1").action is Action.ALLOW  # no exchanges yet
        live.submit(exchange(1))
        # not observed yet and within the budget: the last decision, read without waiting
        assert live.decision("acct-1") == live.decision("acct-1")
        assert live.decision("acct-1").source == "engine"
        await live.drain()
        e = live.decision("acct-1")
        assert (e.action, e.source) == (Action.BLOCK, "engine")
        assert len(lags) == 1 and 0.0 <= lags[0] < 1.0
        assert live.pending == {}
        await live.close()

    asyncio.run(go())


def test_exchanges_are_observed_in_the_order_they_complete() -> None:
    async def go() -> list[str]:
        engine = RecordingEngine(Action.MONITOR)
        live = LiveEngine(engine)
        live.start()
        order = [exchange(i, account=f"acct-{i % 3}") for i in (5, 1, 4, 2, 3)]
        for ex in order:
            live.submit(ex)
        assert sum(live.pending.values()) == 5
        await live.drain()
        await live.close()
        return engine.seen

    seen = asyncio.run(go())
    assert seen == [exchange(i, account=f"acct-{i % 3}").id for i in (5, 1, 4, 2, 3)]


def test_a_lagging_engine_falls_back_by_mode_once_over_budget() -> None:
    async def go(mode: str) -> tuple[str, str, str]:
        live = LiveEngine(
            Engine([], FixedPolicy(Action.ALLOW)),
            on_error=mode,  # type: ignore[arg-type]
            budget_s=0.01,
        )
        live.submit(exchange(1))  # the observer is not running: the engine is stalled
        await asyncio.sleep(0.02)
        late = live.decision("acct-1")
        other = live.decision("acct-2")  # nothing of its own waiting: unaffected
        live.start()
        await live.drain()
        caught_up = live.decision("acct-1")
        await live.close()
        return late.source, other.source, caught_up.source

    assert asyncio.run(go("open")) == ("fail-open", "engine", "engine")
    assert asyncio.run(go("closed")) == ("fail-closed", "engine", "engine")


def test_a_backlog_older_than_half_the_budget_is_observed_without_yielding() -> None:
    async def turns_given_to_requests(budget_s: float) -> int:
        live = LiveEngine(
            Engine([], FixedPolicy(Action.ALLOW, sleep_s=0.003)),
            budget_s=budget_s,
            slice_s=0.0,
        )
        live.start()
        turns = 0
        done = False

        async def request_loop() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(request_loop())
        for i in range(10):
            live.submit(exchange(i))
        await live.drain()
        done = True
        await ticker
        await live.close()
        return turns

    relaxed = asyncio.run(turns_given_to_requests(budget_s=10.0))
    strict = asyncio.run(turns_given_to_requests(budget_s=0.01))
    assert relaxed >= 9  # a young backlog: requests run between observations
    assert strict <= 4  # past 5 ms old, the engine catches up before requests go on


def _lag_count(gw: Running) -> float:
    text = request("GET", gw.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith("distillwatch_engine_lag_seconds_count"):
            return float(line.split()[-1])
    raise AssertionError("no engine lag histogram in /metrics")


def test_through_the_gateway_block_follows_the_observed_exchange(
    start_gateway: GatewayFactory,
) -> None:
    gw = start_gateway(app_factory=fixed_app(Action.BLOCK))
    body = json.dumps({"model": "fake-1", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"authorization": f"Bearer {ALICE}", "content-type": "application/json"}
    chat = gw.url + "/v1/chat/completions"
    assert request("POST", chat, body.encode(), headers).status_code == 200
    deadline = time.monotonic() + 5.0
    while _lag_count(gw) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _lag_count(gw) == 1  # the first exchange has been observed ...
    r = request("POST", chat, body.encode(), headers)
    assert r.status_code == 403  # ... so the account's next request is blocked
    assert r.json()["error"]["code"] == "account_blocked"


def test_unsynced_segments_are_written_inline_and_readable_at_once(tmp_path: Path) -> None:
    async def go() -> None:
        sink = SegmentSink(tmp_path, fsync=False)
        log = GroupCommitLog(sink)
        assert log.inline
        log.start()
        await asyncio.gather(*(log.append(exchange(i)) for i in range(5)))
        lines = sink.path.read_bytes().splitlines()  # written before append returned
        assert [json.loads(line)["id"] for line in lines] == [exchange(i).id for i in range(5)]
        assert log.batches == 1  # one group commit for the five
        await log.close()

    asyncio.run(go())
    assert not GroupCommitLog(SegmentSink(tmp_path / "synced")).inline
