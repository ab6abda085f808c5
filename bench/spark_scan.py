"""``scan --engine spark`` against the embedded scan on one log: wall time, and the same bytes.

Runs ``distillwatch scan`` in child processes — embedded, then ``--engine spark`` under each
``--masters`` entry — on the same log and accounts, checks that every run wrote byte-identical
verdicts and campaigns, and reports wall time (Spark's includes starting its JVM) and the
children's peak RSS (the Python side only for Spark: the JVM is a grandchild). With
``--record`` the table replaces the ``spark scan`` section of ``docs/benchmarks.md``.

    distillwatch simulate --scenario default --out sim
    python bench/spark_scan.py --log sim/exchanges.jsonl.gz --accounts sim/accounts.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distillwatch.bench.sections import record_section

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(ROOT / "bench"))

from scan_throughput import machine  # noqa: E402


def run_scan(log: Path, accounts: Path | None, out: Path, *extra: str) -> dict[str, Any]:
    """One ``scan`` in a child process: wall seconds and the children's peak RSS so far."""
    cmd = [sys.executable, "-m", "distillwatch", "scan", str(log), "-o", str(out), "-q", *extra]
    if accounts is not None:
        cmd += ["--accounts", str(accounts)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"scan failed ({' '.join(extra) or 'embedded'}): {done.stderr[-2000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": round(wall, 1), "peak_rss_mib_so_far": round(rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--accounts", type=Path)
    ap.add_argument("--masters", default="local[1],local[2]")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--record", action="store_true", help="write docs/benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dw-spark-bench-") as tmp:
        runs: dict[str, dict[str, Any]] = {}
        outputs: dict[str, bytes] = {}
        for name in ["embedded", *args.masters.split(",")]:
            out = Path(tmp) / name.replace("[", "_").replace("]", "") / "verdicts.jsonl"
            out.parent.mkdir()
            extra = () if name == "embedded" else ("--engine", "spark", "--spark-master", name)
            runs[name] = run_scan(args.log, args.accounts, out, *extra)
            campaigns = out.with_name("campaigns.jsonl")
            outputs[name] = out.read_bytes() + (
                campaigns.read_bytes() if campaigns.exists() else b""
            )
            print(name, runs[name], flush=True)
        identical = len(set(outputs.values())) == 1
    exchanges = _count(args.log)
    result = {
        "machine": machine(),
        "cores": os.cpu_count(),
        "date": datetime.now(UTC).date().isoformat(),
        "log": str(args.log),
        "exchanges": exchanges,
        "identical": identical,
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not identical:
        raise SystemExit("verdicts or campaigns differ between engines")
    if args.record:
        record_section(DOC, "spark_scan", _section(result))


def _count(log: Path) -> int:
    from distillwatch.log import read_exchanges

    return sum(len(b) for b in read_exchanges(log))


def _section(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {name} | {run['seconds']:,.1f} | {r['exchanges'] / run['seconds']:,.0f} |"
        for name, run in r["runs"].items()
    )
    return (
        "## Spark scan (`bench/spark_scan.py`)\n\n"
        f"{r['date']}, {r['machine']}; `{Path(r['log']).name}`, "
        f"{r['exchanges']:,} exchanges. Verdicts and campaigns byte-identical across the runs: "
        f"**{'yes' if r['identical'] else 'NO'}**. Wall time of the whole command (Spark's "
        "includes starting its JVM).\n\n"
        "| engine | seconds | exchanges/s |\n|---|---:|---:|\n" + rows + "\n"
    )


if __name__ == "__main__":
    main()
