"""kill -9 under load loses no exchange whose response the client received."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from distillwatch.gateway.durable_log import read_segments, segments
from tests.gateway.conftest import ALICE, BOB, Upstream
from tests.gateway.fake_upstream import free_port

pytestmark = pytest.mark.slow


def start(
    port: int, upstream: Upstream, keys: Path, log_dir: Path, fsync: bool = True
) -> subprocess.Popen[bytes]:
    err = log_dir.parent / f"gateway-{port}-{time.monotonic_ns()}.err"
    config = log_dir.parent / "gateway.json"
    config.write_text(json.dumps({"log": {"dir": str(log_dir), "fsync": fsync}}), "utf-8")
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distillwatch", "serve", "--upstream", upstream.url,
             "--keys", str(keys), "--port", str(port), "--config", str(config),
             "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(err.read_text()) from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gateway did not start")


async def load(url: str, seconds: float, received: list[str], workers: int = 32) -> int:
    """Hammer the gateway; record the exchange id of every response received in full."""
    stop = time.monotonic() + seconds
    failures = 0

    async def worker(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal failures
        n = 0
        while time.monotonic() < stop:
            n += 1
            stream = n % 3 == 0
            messages = [{"role": "user", "content": f"worker {i} request {n}"}]
            body = {"model": "fake-1", "stream": stream, "messages": messages}
            key = ALICE if i % 2 else BOB
            try:
                async with session.post(
                    url + "/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key}"},
                ) as r:
                    data = await r.read()
                    ex_id = r.headers.get("x-distillwatch-exchange-id")
                if r.status != 200 or ex_id is None:
                    failures += 1
                elif not stream or data.rstrip().endswith(b"data: [DONE]"):
                    received.append(ex_id)
            except (TimeoutError, aiohttp.ClientError):
                failures += 1
                await asyncio.sleep(0.01)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(worker(i, session) for i in range(workers)))
    return failures


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "no-fsync"])
def test_kill_9_under_load_loses_no_acknowledged_exchange(
    upstream: Upstream, keys_file: Path, tmp_path: Path, fsync: bool
) -> None:
    """Without fsync, the page cache still outlives the process: kill -9 loses nothing."""
    log_dir = tmp_path / "log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = start(port, upstream, keys_file, log_dir, fsync)
    received: list[str] = []

    async def run() -> None:
        task = asyncio.create_task(load(url, 4.0, received))
        await asyncio.sleep(2.0)  # under full load ...
        os.kill(gateway.pid, signal.SIGKILL)  # ... kill -9
        await task

    try:
        asyncio.run(run())
    finally:
        gateway.kill()
        gateway.wait()
    assert len(received) > 100, "the load never got going"

    # restart on the same log: torn tails are repaired, the log reads cleanly
    again = start(port, upstream, keys_file, log_dir, fsync)
    try:
        after: list[str] = []
        asyncio.run(load(url, 0.5, after, workers=4))
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=20)
    logged = {e.id for e in read_segments(log_dir)}
    missing = set(received) - logged
    assert not missing, f"{len(missing)} of {len(received)} acknowledged exchanges lost"
    assert set(after) <= logged and after
    assert len(segments(log_dir)) >= 2  # the restarted process wrote a segment of its own
    for path in segments(log_dir):
        for line in path.read_bytes().splitlines():
            json.loads(line)
