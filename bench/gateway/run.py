"""Gateway latency and throughput on loopback: direct, nginx, bare pass-through, distillwatch.

Every configuration runs in the same invocation against the same fake upstream (one
uvicorn worker, or one nginx worker, each): ``direct`` (client → upstream), ``nginx`` (a
reverse proxy with upstream keep-alive and ``proxy_buffering off``; skipped when no
``nginx`` is on the PATH), ``bare`` (a Starlette + aiohttp pass-through,
``bench/gateway/bare_proxy.py``) and ``distillwatch`` (the gateway with durable logging,
fsync per group commit, and live scoring on every exchange), plus ``distillwatch-nofsync``
to show what fsync costs. For the gateways, the engine's lag (exchange finished → observed,
``distillwatch_engine_lag_seconds``) is read from ``/metrics`` around each measurement.
Optionally a streaming run: N concurrent streams through distillwatch with a slow upstream.

    .venv/bin/python -m bench.gateway.run --out /tmp/gw-bench.json
    # and against another version (here: the last commit), interleaved in the same run
    git archive HEAD src | tar -x -C /tmp/base && .venv/bin/python -m bench.gateway.run \
        --baseline-src /tmp/base/src --out /tmp/gw-bench.json

The load generator shares the machine with the servers, so absolute numbers are a lower
bound on what the servers could do alone; compare configurations within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

ACCOUNTS = 16
# Scoring runs on every exchange; actions are kept out of the way (thresholds at 1.0) so every
# configuration answers every request and does the same work upstream.
POLICY = """name: bench
version: 1
thresholds: {monitor: 0.5, throttle: 1.0, protect: 1.0, block: 1.0}
min_exchanges: 20
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


@contextmanager
def server(
    args: list[str], port: int, command: list[str] | None = None, pythonpath: str | None = None
) -> Iterator[str]:
    """Run ``python -m ARGS`` (or ``command``) until the block ends; yield its base URL.
    ``pythonpath`` puts another source tree first (to run another version of the gateway)."""
    env = None
    if pythonpath is not None:
        env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.Popen(
        command or [sys.executable, "-m", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def body(i: int, stream: bool = False) -> bytes:
    return json.dumps(
        {
            "model": "fake-1",
            "stream": stream,
            "messages": [{"role": "user", "content": f"Question {i}: what is {i} plus {i * 7}?"}],
        }
    ).encode()


def headers(i: int) -> dict[str, str]:
    return {
        "authorization": f"Bearer sk-bench-{i % ACCOUNTS:08d}",
        "content-type": "application/json",
    }


async def request(session: aiohttp.ClientSession, url: str, i: int, stream: bool = False) -> bool:
    async with session.post(url, data=body(i, stream), headers=headers(i)) as r:
        data = await r.read()
        return r.status == 200 and (not stream or data.rstrip().endswith(b"[DONE]"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sequential(url: str, n: int, warmup: int) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        for i in range(warmup + n):
            t = time.perf_counter()
            ok = await request(s, url, i)
            if i >= warmup:
                lat.append((time.perf_counter() - t) * 1000)
                errors += not ok
    return {
        "n": n,
        "errors": errors,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "mean_ms": statistics.fmean(lat),
    }


async def concurrent(url: str, workers: int, seconds: float, warmup_s: float) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    counter = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop = measure_from + seconds

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal errors, counter
        while (now := time.perf_counter()) < stop:
            counter += 1
            ok = await request(s, url, counter)
            if now >= measure_from:
                lat.append((time.perf_counter() - now) * 1000)
                errors += not ok

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as s:
        await asyncio.gather(*(worker(s) for _ in range(workers)))
    elapsed = time.perf_counter() - measure_from
    return {
        "workers": workers,
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / elapsed,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
    }


async def streams(url: str, n: int) -> dict[str, Any]:
    t = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as s:
        results = await asyncio.gather(
            *(request(s, url, i, stream=True) for i in range(n)), return_exceptions=True
        )
    ok = sum(r is True for r in results)
    return {"streams": n, "completed": ok, "errors": n - ok, "wall_s": time.perf_counter() - t}


LAG_METRIC = "distillwatch_engine_lag_seconds_bucket"


def lag_buckets(url: str) -> dict[float, float] | None:
    """Cumulative counts of the gateway's engine-lag histogram (None: not a gateway)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(LAG_METRIC + "{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out or None


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile (ms) of what was observed between two scrapes, interpolated linearly
    within its histogram bucket (``inf`` when it lies past the last finite bound)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if bound == float("inf"):
                return float("inf")
            inside = cum - below
            return (lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)) * 1000
        lower, below = bound, cum
    return float("inf")


def with_lag(url: str, run: Any) -> dict[str, Any]:
    before = lag_buckets(url)
    result: dict[str, Any] = run()
    after = lag_buckets(url) if before is not None else None
    if before is not None and after is not None:
        result["lag_n"] = after[float("inf")] - before.get(float("inf"), 0.0)
        result["lag_p50_ms"] = bucket_quantile(before, after, 0.5)
        result["lag_p99_ms"] = bucket_quantile(before, after, 0.99)
    return result


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    path = url + "/v1/chat/completions"
    return {
        "c1": with_lag(url, lambda: asyncio.run(sequential(path, args.requests, args.warmup))),
        "c64": with_lag(url, lambda: asyncio.run(concurrent(path, 64, args.seconds, 1.0))),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max over rounds of every figure, and the rounds themselves."""
    out: dict[str, Any] = {"rounds": runs}
    for level in ("c1", "c64"):
        keys = [k for k, v in runs[0][level].items() if isinstance(v, int | float)]
        out[level] = {k: statistics.median(run[level][k] for run in runs) for k in keys}
        out[level + "_spread"] = {
            k: [min(run[level][k] for run in runs), max(run[level][k] for run in runs)]
            for k in keys
        }
    return out


def compare(configs: dict[str, Any]) -> dict[str, Any]:
    """Per round, the issue's targets: added c=1 p50/p99 over direct, c=64 req/s over bare."""
    direct, bare = configs["direct"]["rounds"], configs["bare"]["rounds"]
    out: dict[str, Any] = {}
    for name, summary in configs.items():
        if name == "direct":
            continue
        rounds = summary["rounds"]
        added_p50 = [
            r["c1"]["p50_ms"] - d["c1"]["p50_ms"] for r, d in zip(rounds, direct, strict=True)
        ]
        added_p99 = [
            r["c1"]["p99_ms"] - d["c1"]["p99_ms"] for r, d in zip(rounds, direct, strict=True)
        ]
        ratio = [r["c64"]["rps"] / b["c64"]["rps"] for r, b in zip(rounds, bare, strict=True)]
        out[name] = {
            "added_p50_ms": {"median": statistics.median(added_p50), "rounds": added_p50},
            "added_p99_ms": {"median": statistics.median(added_p99), "rounds": added_p99},
            "c64_vs_bare": {"median": statistics.median(ratio), "rounds": ratio},
        }
    return out


NGINX_CONF = """worker_processes 1;
daemon off;
{user}
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    upstream fake {{ server {upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def nginx_command(nginx: str, up: str, port: int, work: Path) -> list[str]:
    """A one-worker nginx reverse proxy to ``up`` on ``port`` (config written into ``work``)."""
    (work / "nginx-tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    user = "user root;" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(user=user, work=work, upstream=up.removeprefix("http://"), port=port),
        encoding="utf-8",
    )
    return [nginx, "-c", str(conf), "-p", str(work)]


def gateway_args(up: str, port: int, work: Path, name: str, fsync: bool) -> list[str]:
    config = work / f"{name}.yaml"
    config.write_text(
        json.dumps(
            {
                "upstream": up + "/v1",
                "keys": str(work / "keys.json"),
                "port": port,
                "log": {"dir": str(work / f"{name}-log"), "fsync": fsync},
                "engine": {"policy": str(work / "policy.yaml")},
            }
        ),
        encoding="utf-8",
    )
    return ["distillwatch", "serve", "--config", str(config), "--log-level", "warning"]


def nginx_version() -> str | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        return None
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests at concurrency 1")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time at c=64")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--streams", type=int, default=1000, help="0 to skip the stream run")
    parser.add_argument("--no-nginx", action="store_true", help="leave nginx out")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="a `src` folder of another distillwatch version: adds `distillwatch-baseline` "
        "(fsync on) to compare with",
    )
    parser.add_argument("--out", type=Path, default=Path("gateway-bench.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "nginx": nginx_version(),
        },
        "args": {k: str(v) for k, v in vars(args).items()},
        "configs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        keys = {f"sk-bench-{i:08d}": f"bench-acct-{i}" for i in range(ACCOUNTS)}
        (work / "keys.json").write_text(json.dumps(keys), encoding="utf-8")
        (work / "policy.yaml").write_text(POLICY, encoding="utf-8")
        up_port = free_port()
        with contextlib.ExitStack() as stack:
            up = stack.enter_context(
                server(["tests.gateway.fake_upstream", "--port", str(up_port)], up_port)
            )
            urls = {"direct": up}
            nginx = shutil.which("nginx") or (
                "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
            )
            if nginx is not None and not args.no_nginx:
                port = free_port()
                command = nginx_command(nginx, up, port, work)
                urls["nginx"] = stack.enter_context(server([], port, command))
            else:
                print("nginx: not found or --no-nginx, left out", flush=True)
            port = free_port()
            bare = ["bench.gateway.bare_proxy", "--port", str(port), "--upstream", up]
            urls["bare"] = stack.enter_context(server(bare, port))
            for name, fsync in (("distillwatch", True), ("distillwatch-nofsync", False)):
                port = free_port()
                urls[name] = stack.enter_context(
                    server(gateway_args(up, port, work, name, fsync), port)
                )
            if args.baseline_src is not None:  # another version, e.g. `git archive` of a commit
                port = free_port()
                base = gateway_args(up, port, work, "distillwatch-baseline", True)
                urls["distillwatch-baseline"] = stack.enter_context(
                    server(base, port, pythonpath=str(args.baseline_src.resolve()))
                )
            # rounds interleave the configurations so that drifting machine load hits them alike
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
            for r in range(args.rounds):
                for name, url in urls.items():
                    rounds[name].append(measure(url, args))
                    print(f"round {r + 1} {name}", rounds[name][-1], flush=True)
            results["configs"] = {name: summarise(runs) for name, runs in rounds.items()}
            results["targets"] = compare(results["configs"])
            print(json.dumps(results["targets"], indent=1), flush=True)
        if args.streams:
            up_port = free_port()
            slow = ["tests.gateway.fake_upstream", "--port", str(up_port), "--delay-ms", "100"]
            with server(slow, up_port) as up:
                port = free_port()
                with server(gateway_args(up, port, work, "streams", True), port) as url:
                    results["streams"] = asyncio.run(
                        streams(url + "/v1/chat/completions", args.streams)
                    )
                    print("streams", results["streams"], flush=True)
    results["machine"]["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
