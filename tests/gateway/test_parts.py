"""The gateway's parts on their own: config, keys, the durable log, the live engine."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from distillwatch.detect import Engine
from distillwatch.errors import ConfigError
from distillwatch.gateway.config import load_config
from distillwatch.gateway.durable_log import (
    GroupCommitLog,
    LogWriteError,
    SegmentSink,
    read_segments,
    repair_segments,
    segments,
)
from distillwatch.gateway.keys import load_keys
from distillwatch.gateway.live import LiveEngine
from distillwatch.records import Action, Exchange
from tests.factories import exchange
from tests.gateway.policies import FixedPolicy


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("upstream: http://u/v1\nthrottle:\n  requests: lots\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gw.yaml: `throttle.requests`: not a rate limit"):
        load_config(path)
    path.write_text("upstream: http://u/v1\nenigne: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="`enigne`: unknown key"):
        load_config(path)
    path.write_text("upstream: http://u/v1\nengine: {on_error: maybe}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"`engine\.on_error`"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_config_paths_are_relative_to_the_file_and_options_win(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("upstream: http://u/v1/\nkeys: keys.yaml\nport: 9000\n", encoding="utf-8")
    cfg = load_config(path, port=9100)
    assert cfg.keys == tmp_path / "keys.yaml"
    assert cfg.port == 9100
    assert cfg.upstream == "http://u/v1" and cfg.upstream_base == "http://u"


def test_keys_file_forms_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "sk-aaaaaaaa: acct-a\nsk-bbbbbbbb: {account_id: acct-b, tier: research}\n", "utf-8"
    )
    ring = load_keys(path)
    a = ring.lookup("sk-aaaaaaaa")
    assert a is not None and a.account_id == "acct-a" and a.key_id.startswith("key-")
    assert ring.lookup("sk-nope-nope") is None
    assert ring.accounts()["acct-b"].tier == "research"
    path.write_text("sk-secret-value: {account: x}\n", "utf-8")
    with pytest.raises(ConfigError, match="unknown field") as e:
        load_keys(path)
    assert "sk-secret-value" not in str(e.value)  # secrets never reach error messages
    path.write_text("short: acct\n", "utf-8")
    with pytest.raises(ConfigError, match="at least 8"):
        load_keys(path)


def test_torn_last_line_is_repaired(tmp_path: Path) -> None:
    sink = SegmentSink(tmp_path, segment_bytes=1 << 20)
    sink.write_batch([exchange(1), exchange(2)])
    sink.close()
    [seg] = segments(tmp_path)
    with seg.open("ab") as f:
        f.write(b'{"id": "half-writt')
    assert repair_segments(tmp_path) == 1
    assert [e.id for e in read_segments(tmp_path)] == [exchange(1).id, exchange(2).id]


def test_segments_roll_by_size_and_a_live_segment_is_left_alone(tmp_path: Path) -> None:
    sink = SegmentSink(tmp_path, segment_bytes=1024)
    for i in range(20):
        sink.write_batch([exchange(i)])
    assert len(segments(tmp_path)) > 2
    with sink.path.open("ab") as f:  # another process's half-written line
        f.write(b'{"id"')
    assert repair_segments(tmp_path) == 0  # held by the writer: not touched
    sink.close()
    assert len(list(read_segments_safe(tmp_path))) == 20


def read_segments_safe(folder: Path) -> list[Exchange]:
    repair_segments(folder)
    return list(read_segments(folder))


def test_group_commit_batches_concurrent_appends(tmp_path: Path) -> None:
    async def go() -> GroupCommitLog:
        log = GroupCommitLog(SegmentSink(tmp_path), batch_max=1000)
        log.start()
        await asyncio.gather(*(log.append(exchange(i)) for i in range(200)))
        await log.close()
        return log

    log = asyncio.run(go())
    assert log.written == 200 and log.batches < 20
    assert len(list(read_segments(tmp_path))) == 200


def test_a_failing_sink_fails_the_append(tmp_path: Path) -> None:
    class Broken:
        def write_batch(self, batch: list[Exchange]) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            pass

    async def go() -> None:
        log = GroupCommitLog(Broken())
        log.start()
        with pytest.raises(LogWriteError, match="disk full"):
            await log.append(exchange(1))
        await log.close()

    asyncio.run(go())


def test_unwritable_log_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LogWriteError, match="cannot open exchange log"):
        SegmentSink(blocker / "log")


def test_decision_budget_falls_back_by_mode() -> None:
    async def go(mode: str) -> tuple[Action, str]:
        live = LiveEngine(
            Engine([], FixedPolicy(Action.THROTTLE)),
            on_error=mode,  # type: ignore[arg-type]
            budget_s=0.01,
        )
        live.observe_now(exchange(1))  # the account is throttled ...
        live.submit(exchange(2))  # ... and has an exchange the engine has not seen (not started)
        assert (await live.current("acct-1")).source == "engine"  # within budget: last decision
        await asyncio.sleep(0.02)  # the engine now lags the account by more than the budget
        enforcement = await live.current("acct-1")
        return enforcement.action, enforcement.source

    assert asyncio.run(go("open")) == (Action.THROTTLE, "fail-open")
    assert asyncio.run(go("closed"))[1] == "fail-closed"


def test_live_engine_clamps_time_and_honours_overrides() -> None:
    async def go() -> None:
        engine = Engine([], FixedPolicy(Action.PROTECT))
        live = LiveEngine(engine)
        live.start()
        live.submit(exchange(10))
        live.submit(exchange(5))  # finished later, arrived earlier
        await live.drain()
        assert (await live.current("acct-1")).action is Action.PROTECT
        assert engine.last_t == exchange(10).ts.timestamp()
        live.override("acct-1", Action.ALLOW, "appeal granted")
        e = await live.current("acct-1")
        assert (e.action, e.source) == (Action.ALLOW, "override")
        assert live.clear_override("acct-1")
        await live.close()

    asyncio.run(go())


def test_keys_json_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"sk-jjjjjjjj": "acct-j"}), "utf-8")
    assert load_keys(path).lookup("sk-jjjjjjjj") is not None
    path.chmod(0o000)
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="cannot read"):
            load_keys(path)
