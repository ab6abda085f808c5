"""``distillwatch demo --live`` at small scale: a simulated log replayed through a real
``distillwatch serve`` subprocess over HTTP, enforcement visible in the tallies."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from distillwatch.bench.traffic import generate
from distillwatch.cli.demo_live import run_live_demo
from distillwatch.cli.main import app
from distillwatch.gateway.durable_log import read_segments
from distillwatch.log import read_exchanges
from tests.gateway.conftest import ALICE, GatewayFactory
from tests.gateway.http import request

BLOCK_AFTER_3 = """\
name: block-after-3
version: 1
thresholds: {monitor: 0.0, throttle: 0.0, protect: 0.0, block: 0.0}
min_exchanges: 3
"""


def test_live_replay_enforces_and_logs_every_request(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    generate(sim, seed=1, scale=0.05, days=0.25)
    original = [e for batch in read_exchanges(sim / "exchanges.jsonl.gz") for e in batch]
    policy = tmp_path / "policy.yaml"
    policy.write_text(BLOCK_AFTER_3, encoding="utf-8")
    started = time.monotonic()
    result = run_live_demo(
        Console(quiet=True),
        sim_dir=sim,
        out=tmp_path,
        policy=policy,
        campaigns=False,
        concurrency=1,  # one request at a time: decisions land before the next request
    )
    assert time.monotonic() - started < 60
    assert result.sent == len(original) and result.logged == len(original)
    per_account = Counter(e.account_id for e in original)
    tallies = result.profiles.values()
    assert sum(t.sent for t in tallies) == len(original)
    assert all(t.failed == 0 and t.throttled == 0 for t in tallies)
    served = {a: n for t in tallies for a, n in t.served_by_account.items()}
    stopped = {a for t in tallies for a in t.stopped}
    # the policy blocks an account once it has made 3 exchanges: it gets 3 answers, then 403s
    assert served == {a: min(n, 3) for a, n in per_account.items()}
    assert stopped == {a for a, n in per_account.items() if n > 3}
    assert {t.label for t in tallies} == {"legit", "attack"}
    # replay_clock: the gateway's log carries the simulated times, not the replay's
    logged = list(read_segments(tmp_path / "live" / "gateway-log"))
    assert sorted(e.ts for e in logged) == sorted(e.ts for e in original)
    assert {e.ip for e in logged} == {e.ip for e in original}  # X-Forwarded-For trusted


def test_replay_header_is_ignored_unless_configured(start_gateway: GatewayFactory) -> None:
    gw = start_gateway()
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {
        "authorization": f"Bearer {ALICE}",
        "content-type": "application/json",
        "x-distillwatch-replay-ts": "2026-03-02T00:00:09Z",
    }
    before = time.time()
    assert request("POST", gw.url + "/v1/chat/completions", body, headers).status_code == 200
    (ex,) = gw.exchanges()
    assert ex.ts.timestamp() >= before - 1  # arrival time, not the header's
    replaying = start_gateway(replay_clock=True)
    assert request("POST", replaying.url + "/v1/chat/completions", body, headers).status_code == 200
    (ex,) = replaying.exchanges()
    assert ex.ts.isoformat() == "2026-03-02T00:00:09+00:00"


def test_demo_rejects_an_unknown_clock(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--live", "--clock", "x"])
    assert result.exit_code == 2
    assert "--clock" in result.output
