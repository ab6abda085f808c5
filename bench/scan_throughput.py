"""Throughput and peak memory of ``distillwatch scan`` on a generated log.

Generates a log of about ``--exchanges`` exchanges with the demo scenario (real prompts and
traces; cached under ``--work``), runs ``distillwatch scan`` on it in a child process, and
reports exchanges/s and the child's peak RSS. With ``--record`` the result replaces the
``scan throughput`` section of ``docs/benchmarks.md``, with the machine and the date.

    python bench/scan_throughput.py --exchanges 1000000 --record
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from distillwatch.bench.sections import record_section
from distillwatch.bench.sources import find_data_dir
from distillwatch.bench.traffic import generate

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores{mem}, Python {platform.python_version()}, {platform.system()}"


def build_log(target: int, work: Path, seed: int) -> tuple[Path, Path, int, float]:
    """A log of about ``target`` exchanges (cached by target and seed)."""
    out = work / f"log-{target}-{seed}"
    meta = out / "meta.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        return out / "exchanges.jsonl.gz", out / "accounts.jsonl", m["exchanges"], m["seconds"]
    data = find_data_dir()
    probe = generate(work / "probe", seed=seed, scale=1.0, data_dir=data)
    scale = target / max(1, probe.exchanges)
    for _ in range(3):  # volume is not quite linear in scale (rounding, heavy-tailed rates)
        t0 = time.perf_counter()
        gen = generate(out, seed=seed, scale=scale, data_dir=data)
        seconds = time.perf_counter() - t0
        if abs(gen.exchanges - target) <= 0.03 * target:
            break
        scale *= target / max(1, gen.exchanges)
    meta.write_text(json.dumps({"exchanges": gen.exchanges, "seconds": seconds, "scale": scale}))
    return gen.exchanges_path, gen.accounts_path, gen.exchanges, seconds


def run_scan(log: Path, accounts: Path, out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one ``distillwatch scan`` child process."""
    cmd = [sys.executable, "-m", "distillwatch", "scan", str(log)]
    cmd += ["--accounts", str(accounts), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child
    return wall, peak_kb * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exchanges", type=int, default=1_000_000, help="about this many")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / ".bench-cache")
    ap.add_argument("--record", action="store_true", help="write docs/benchmarks.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    log, accounts, n, gen_s = build_log(args.exchanges, args.work, args.seed)
    size = log.stat().st_size
    print(f"log: {n:,} exchanges, {size / 2**20:.0f} MiB gzip ({log}); generated in {gen_s:.0f} s")
    wall, peak = run_scan(log, accounts, args.work / "verdicts.jsonl")
    rate = n / wall
    n_accounts = sum(1 for _ in accounts.open(encoding="utf-8"))
    print(f"scan: {wall:.1f} s, {rate:,.0f} exchanges/s, peak RSS {peak / 2**20:.0f} MiB")
    if args.record:
        today = datetime.now(UTC).date().isoformat()
        record_section(
            DOC,
            "scan_throughput",
            "## Scan throughput (`bench/scan_throughput.py`)\n\n"
            f"Measured {today} on {machine()}.\n\n"
            "| log | accounts | wall time | exchanges/s | peak RSS |\n"
            "|---|---|---|---|---|\n"
            f"| {n:,} exchanges, demo scenario, JSONL.gz ({size / 2**20:.0f} MiB) "
            f"| {n_accounts:,} | {wall:.1f} s | {rate:,.0f} | {peak / 2**20:.0f} MiB |\n\n"
            f"Command: `python bench/scan_throughput.py --exchanges {args.exchanges} --record` "
            "(wall time of the `distillwatch scan` child process, interpreter start-up and "
            "gzip/JSON decoding included; peak RSS is the child's `ru_maxrss`).",
        )
        print(f"recorded in {DOC}")


if __name__ == "__main__":
    main()
