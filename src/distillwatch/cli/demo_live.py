"""``distillwatch demo --live``: the gateway stopping a simulated campaign, live, over HTTP.

A recorded upstream (answers with the log's token counts) and ``distillwatch serve`` (a
subprocess, as an operator runs it) start on loopback ports; the simulated log's requests
are replayed through the gateway in time order, each with its account's API key, client
address and user agent, as fast as the gateway takes them; a table shows, per profile, what
was served, throttled and blocked, and when each campaign's accounts were stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from distillwatch.errors import DistillwatchError
from distillwatch.log import read_exchanges, read_labels
from distillwatch.records import Exchange, Label

Clock = Literal["arrival", "replay"]
QUIET = ("--log-level", "warning")


@dataclass
class ProfileTally:
    """What one generator profile's requests got from the gateway."""

    label: str
    accounts: set[str] = field(default_factory=set)
    sent: int = 0
    served: int = 0
    throttled: int = 0
    blocked: int = 0
    failed: int = 0
    served_by_account: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    stopped: dict[str, tuple[float, datetime, int]] = field(default_factory=dict)
    """account → (seconds into the replay, logged time, requests served before) at its
    first 403."""


@dataclass
class LiveResult:
    profiles: dict[str, ProfileTally]
    sent: int
    seconds: float
    logged: int
    sim_seconds: float
    clock: Clock

    def share_served(self, label: str) -> float:
        tallies = [t for t in self.profiles.values() if t.label == label]
        sent = sum(t.sent for t in tallies)
        return sum(t.served for t in tallies) / sent if sent else 0.0


class Tally:
    """Counts answers per profile as they come in (one asyncio loop: no locks)."""

    def __init__(self, labels: dict[str, Label]) -> None:
        self.labels = labels
        self.profiles: dict[str, ProfileTally] = {}

    def add(self, ex: Exchange, status: int, elapsed_s: float) -> None:
        lb = self.labels.get(ex.account_id)
        profile = (lb.profile or lb.label) if lb is not None else "unlabelled"
        t = self.profiles.get(profile)
        if t is None:
            t = self.profiles[profile] = ProfileTally(lb.label if lb is not None else "?")
        t.accounts.add(ex.account_id)
        t.sent += 1
        if 200 <= status < 300:
            t.served += 1
            t.served_by_account[ex.account_id] += 1
        elif status == 429:
            t.throttled += 1
        elif status == 403:
            t.blocked += 1
            if ex.account_id not in t.stopped:
                served = t.served_by_account[ex.account_id]
                t.stopped[ex.account_id] = (elapsed_s, ex.ts, served)
        else:
            t.failed += 1


def live_table(profiles: dict[str, ProfileTally], start: datetime | None) -> Table:
    table = Table(title="through the gateway, live", title_justify="left")
    for col in (
        "profile",
        "label",
        "accounts",
        "sent",
        "served",
        "throttled",
        "blocked",
        "accounts stopped",
        "first stopped at",
        "served before stop (median)",
    ):
        table.add_column(col, justify="left" if col in ("profile", "label") else "right")
    for name in sorted(profiles, key=lambda p: (profiles[p].label != "attack", p)):
        t = profiles[name]
        first = min(t.stopped.values(), default=None)
        when = "–"
        if first is not None:
            when = f"{first[0]:.1f} s"
            if start is not None:
                hours = (first[1] - start).total_seconds() / 3600
                when += f" (log h {hours:.1f})"
        before = sorted(v[2] for v in t.stopped.values())
        table.add_row(
            name,
            t.label,
            str(len(t.accounts)),
            f"{t.sent:,}",
            f"{t.served:,}",
            f"{t.throttled:,}",
            f"{t.blocked:,}",
            f"{len(t.stopped)}/{len(t.accounts)}",
            when,
            str(before[len(before) // 2]) if before else "–",
            style="red" if t.label == "attack" else "",
        )
    return table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def demo_key(account_id: str, key_id: str | None) -> str:
    """The replay's API key for one of an account's keys (stable, never a real secret).

    >>> demo_key("acct-1", None)[:8]
    'sk-demo-'
    """
    return "sk-demo-" + hashlib.sha256(f"{account_id}/{key_id}".encode()).hexdigest()[:24]


def write_keys(path: Path, exchanges: list[Exchange]) -> None:
    keys: dict[str, object] = {}
    for ex in exchanges:
        entry: dict[str, str] = {"account_id": ex.account_id}
        if ex.api_key_id:
            entry["key_id"] = ex.api_key_id
        keys[demo_key(ex.account_id, ex.api_key_id)] = entry
    path.write_text(json.dumps(keys), encoding="utf-8")


@contextlib.contextmanager
def gateway_process(config: Path, output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``distillwatch serve --config`` in a subprocess; stopped (SIGTERM, then kill) after."""
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distillwatch", "serve", "--config", str(config), *QUIET],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = output.read_text(errors="replace").strip().splitlines()[-5:]
                raise DistillwatchError("the gateway did not start: " + " | ".join(tail))
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise DistillwatchError("the gateway did not answer on /healthz within 60 s")


def run_live_demo(
    console: Console,
    *,
    sim_dir: Path,
    out: Path,
    clock: Clock = "replay",
    concurrency: int = 32,
    policy: Path | None = None,
    limit: int | None = None,
    campaigns: bool = True,
) -> LiveResult:
    """Replay ``sim_dir``'s log (exchanges.jsonl.gz, accounts.jsonl, labels.jsonl) through
    a gateway on loopback and show what it served, throttled and blocked."""
    from distillwatch.gateway.durable_log import read_segments

    exchanges = [e for batch in read_exchanges(sim_dir / "exchanges.jsonl.gz") for e in batch]
    exchanges.sort(key=lambda e: (e.ts, e.id))
    if limit is not None:
        exchanges = exchanges[:limit]
    if not exchanges:
        raise DistillwatchError(f"no exchanges to replay in {sim_dir}")
    labels = read_labels(sim_dir / "labels.jsonl")
    work = out / "live"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_keys(work / "keys.json", exchanges)
    gw_port, up_port = _free_port(), _free_port()
    config = {
        "upstream": f"http://127.0.0.1:{up_port}/v1",
        "keys": "keys.json",
        "port": gw_port,
        "trust_forwarded_for": True,  # the replay sends each exchange's client address
        "replay_clock": clock == "replay",
        "log": {"dir": "gateway-log"},
        "engine": {
            "accounts": str((sim_dir / "accounts.jsonl").resolve()),
            "campaigns": campaigns,
        },
    }
    if policy is not None:
        config["engine"] = {**config["engine"], "policy": str(policy.resolve())}  # type: ignore[dict-item]
    (work / "gateway.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    span = (exchanges[-1].ts - exchanges[0].ts).total_seconds()
    console.print(
        f"    replaying {len(exchanges):,} requests ({span / 86400:.1f} days of log) through "
        f"`distillwatch serve` on 127.0.0.1:{gw_port}, upstream on 127.0.0.1:{up_port} …"
    )
    tally = Tally(labels)
    with gateway_process(work / "gateway.json", work / "gateway.out") as proc:
        seconds = asyncio.run(
            _run(
                console,
                exchanges,
                tally,
                work / "gateway.out",
                proc,
                gw_port,
                up_port,
                clock,
                concurrency,
            )
        )
    logged = sum(1 for _ in read_segments(work / "gateway-log"))
    return LiveResult(tally.profiles, len(exchanges), seconds, logged, span, clock)


async def _run(
    console: Console,
    exchanges: list[Exchange],
    tally: Tally,
    output: Path,
    proc: subprocess.Popen[bytes],
    gw_port: int,
    up_port: int,
    clock: Clock,
    concurrency: int,
) -> float:
    import uvicorn

    from distillwatch.gateway.replay import recorded_answers, recorded_upstream, replay

    server = uvicorn.Server(
        uvicorn.Config(
            recorded_upstream(recorded_answers(exchanges)),
            host="127.0.0.1",
            port=up_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        url = f"http://127.0.0.1:{gw_port}"
        await _wait_healthy(url, proc, output)
        start = exchanges[0].ts
        started = time.perf_counter()
        with Live(live_table({}, start), console=console, refresh_per_second=4) as live:

            async def refresh() -> None:
                while True:
                    await asyncio.sleep(0.25)
                    live.update(live_table(tally.profiles, start))

            ticker = asyncio.create_task(refresh())
            try:
                await replay(
                    url,
                    exchanges,
                    lambda ex: demo_key(ex.account_id, ex.api_key_id),
                    concurrency=concurrency,
                    send_ts=clock == "replay",
                    on_sent=lambda s: tally.add(s.exchange, s.status, s.elapsed_s),
                )
            finally:
                ticker.cancel()
                live.update(live_table(tally.profiles, start))
        if not console.is_terminal:
            console.line()  # the final table is written without its last line break
        return time.perf_counter() - started
    finally:
        server.should_exit = True
        await serving


def explain(console: Console, result: LiveResult) -> None:
    """The lines under the live table: totals, how time was compressed, where the log is."""
    factor = result.sim_seconds / result.seconds if result.seconds else 0.0
    rate = result.sent / result.seconds if result.seconds else 0.0
    console.print(
        f"    {result.sent:,} requests in {result.seconds:.1f} s ({rate:,.0f} req/s); "
        f"legitimate requests served: {result.share_served('legit'):.1%}, attack requests "
        f"served: {result.share_served('attack'):.1%}; {result.logged:,} exchanges in the "
        "gateway's log"
    )
    if result.clock == "arrival":
        note = (
            f"The gateway stamps each exchange with its arrival time, so the engine saw "
            f"{result.sim_seconds / 86400:.1f} days of traffic compressed into "
            f"{result.seconds:.0f} s ({factor:,.0f}× faster): signals that use time (rates, "
            "bursts, time of day, account age) saw compressed time."
        )
    else:
        note = (
            "replay_clock: the gateway took each exchange's time from the log "
            "(X-Distillwatch-Replay-Ts), so time-based signals saw the original timing, "
            f"replayed {factor:,.0f}× faster."
        )
    console.print(
        Group(
            Text(note, style="dim"),
            Text(
                "Throttle budgets are per wall-clock minute, so they bite harder than they "
                "would in real time. 'first stopped at': seconds into the replay (and hours "
                "into the log) of the campaign's first 403; 'served before stop': requests "
                "an account got before its first 403.",
                style="dim",
            ),
        )
    )


def live_step(console: Console, *, out: Path, clock: Clock = "replay") -> LiveResult:
    """The demo's live part, on the log the demo just generated in ``out``."""
    console.print(
        "[bold]live[/] the same log through the gateway: `distillwatch serve` with campaign "
        "attribution, a recorded upstream, every request over HTTP with its account's API key …"
    )
    result = run_live_demo(console, sim_dir=out, out=out, clock=clock)
    explain(console, result)
    return result
