"""Full scale, embedded: ``distillwatch scan`` against a bare DuckDB pass over the same Parquet.

Generates the packaged ``fullscale`` scenario (a 24,000-account hydra at ~26 exchanges per
account per day inside a week of legitimate traffic; about 17M exchanges at scale 1) as
Parquet with ``distillwatch simulate``, or reuses one with ``--sim DIR``. Then, in one run and
one child process each, measures

- a bare DuckDB pass: one aggregate per column over exactly the columns ``scan`` reads
  (``log.parquet.check_schema``), so every column is read and decoded, nothing else done;
- ``distillwatch scan`` on the same file (the embedded engine, campaigns on);

with wall time, CPU time and peak RSS (``ru_maxrss`` of each child, from ``os.wait4``).
``--prefix N`` runs both on the log's first N exchanges (in time order) instead of all of it;
the results say so. Writes a results JSON, and with ``--record`` the ``fullscale`` section of
``docs/benchmarks.md``.

    python bench/fullscale.py --record                       # generate, measure, record
    python bench/fullscale.py --sim .bench-cache/fullscale-x1-seed7 --record
    python bench/fullscale.py --scale 0.01                   # a quick run while developing
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distillwatch.bench.sections import record_section
from distillwatch.log.kinds import EXCHANGES
from distillwatch.log.parquet import check_schema

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
LOG_NAME = "exchanges.parquet"


@dataclass
class Child:
    """One measured child process."""

    command: list[str]
    wall_s: float
    cpu_s: float  # user + system
    peak_rss_bytes: int
    output: str


TIME = Path("/usr/bin/time")  # GNU time: the measured command's own rusage


def run_child(command: list[str], *, env: dict[str, str] | None = None) -> Child:
    """Run ``command``; its wall time, CPU time and peak RSS.

    Through GNU ``time`` when present: a child spawned straight from this process (vfork)
    inherits this process's peak RSS in its ``ru_maxrss``; ``time``'s own child does not.
    """
    with tempfile.TemporaryDirectory(prefix="fullscale-") as tmp:
        stats = Path(tmp) / "rusage"
        timed = [str(TIME), "-o", str(stats), "-f", "%U %S %M", *command]
        t0 = time.perf_counter()
        with subprocess.Popen(
            timed if TIME.is_file() else command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        ) as proc:
            assert proc.stdout is not None
            output = proc.stdout.read().decode("utf-8", "replace")
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"error: {' '.join(command)} exited {proc.returncode}:\n{output[-2000:]}")
        if TIME.is_file():
            user, system, peak_kb = stats.read_text().split()[-3:]
            return Child(command, wall, float(user) + float(system), int(peak_kb) * 1024, output)
    cpu = usage.ru_utime + usage.ru_stime
    return Child(command, wall, cpu, usage.ru_maxrss * 1024, output)


def machine() -> dict[str, Any]:
    """CPU model (``lscpu``), the cores this process may use, memory, Python, load."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            model,
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        mem_gib = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        mem_gib = None
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "system": platform.system(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (the 2 cores are shared with others)."""
    return [round(x, 2) for x in os.getloadavg()]


def generate(folder: Path, scale: float, seed: int) -> dict[str, Any]:
    """``distillwatch simulate --scenario fullscale`` to ``folder/exchanges.parquet``, measured."""
    cmd = [sys.executable, "-m", "distillwatch", "simulate", "--scenario", "fullscale"]
    cmd += ["--scale", f"{scale:g}", "--seed", str(seed), "--out", str(folder / LOG_NAME), "-q"]
    print(f"generating: {' '.join(cmd[1:])}", flush=True)
    before = load()
    child = run_child(cmd)
    meta = {
        "scenario": "fullscale",
        "scale": scale,
        "seed": seed,
        "command": "distillwatch " + " ".join(cmd[3:]),
        "seconds": round(child.wall_s, 1),
        "cpu_s": round(child.cpu_s, 1),
        "peak_rss_bytes": child.peak_rss_bytes,
        "load_before": before,
        "load_after": load(),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def prefix_log(log: Path, rows: int) -> Path:
    """The first ``rows`` exchanges of ``log`` as their own Parquet file (made once)."""
    out = log.with_name(f"prefix-{rows}.parquet")
    if out.is_file() and pq.ParquetFile(out).metadata.num_rows == rows:
        return out
    pf = pq.ParquetFile(log)
    tmp = out.with_name(f".tmp-{out.name}")
    left = rows
    with pq.ParquetWriter(tmp, pf.schema_arrow, compression="zstd") as w:
        for batch in pf.iter_batches(batch_size=65_536):
            if left <= 0:
                break
            batch = batch.slice(0, left)
            w.write_batch(batch)
            left -= batch.num_rows
    tmp.replace(out)
    return out


# One aggregate per column, by Parquet type, that needs every value decoded.
_DUCKDB_CHILD = """
import sys, time, json, duckdb
path, threads, cols = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
aggs = ", ".join(cols.values())
t0 = time.perf_counter()
row = con.execute(f"SELECT count(*), {aggs} FROM read_parquet(?)", [path]).fetchone()
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": row[0], "threads": threads,
                  "duckdb": duckdb.__version__}))
"""


def duckdb_aggregates(columns: list[str]) -> dict[str, str]:
    """SQL aggregates reading each column: strings by length, numbers by sum, times by max."""
    types = {f.name: f.type for f in EXCHANGES.schema}
    out = {}
    for name in columns:
        t = str(types[name])
        quoted = f'"{name}"'
        if t.startswith("timestamp"):
            out[name] = f"max({quoted})"
        elif t in ("string", "large_string"):
            out[name] = f"sum(strlen({quoted}))"
        else:
            out[name] = f"sum({quoted})"
    return out


def duckdb_pass(log: Path, columns: list[str], threads: int) -> dict[str, Any]:
    """A bare DuckDB pass over ``columns`` of ``log`` in a child process."""
    aggs = duckdb_aggregates(columns)
    cmd = [sys.executable, "-c", _DUCKDB_CHILD, str(log), str(threads), json.dumps(aggs)]
    before = load()
    child = run_child(cmd)
    inner = json.loads(child.output.strip().splitlines()[-1])
    return {
        "query_s": round(inner["seconds"], 2),
        "wall_s": round(child.wall_s, 2),
        "cpu_s": round(child.cpu_s, 1),
        "peak_rss_bytes": child.peak_rss_bytes,
        "rows": inner["rows"],
        "threads": inner["threads"],
        "duckdb": inner["duckdb"],
        "sql": f"SELECT count(*), {', '.join(aggs.values())} FROM read_parquet(?)",
        "load_before": before,
    }


def composition(log: Path, labels: Path) -> dict[str, int]:
    """Exchanges per labelled profile (after the timed passes; not itself timed)."""
    import duckdb

    con = duckdb.connect()
    rows = con.execute(
        "SELECT l.profile, count(*) FROM read_parquet(?) e "
        "JOIN read_json(?, format = 'newline_delimited') l USING (account_id) "
        "GROUP BY ALL ORDER BY 2 DESC",
        [str(log), str(labels)],
    ).fetchall()
    return {str(p): int(n) for p, n in rows}


_SCAN_LINE = re.compile(r"([\d,]+) exchanges from ([\d,]+) accounts in ([\d.]+) s")


def scan_pass(log: Path, accounts: Path, out: Path) -> dict[str, Any]:
    """``distillwatch scan`` on ``log`` in a child process (the embedded engine)."""
    cmd = [sys.executable, "-m", "distillwatch", "scan", str(log), "--accounts", str(accounts)]
    cmd += ["--out", str(out), "--quiet"]
    before = load()
    child = run_child(cmd, env={"COLUMNS": "160"})
    found = _SCAN_LINE.search(child.output)
    return {
        "wall_s": round(child.wall_s, 1),
        "cpu_s": round(child.cpu_s, 1),
        "peak_rss_bytes": child.peak_rss_bytes,
        "replay_s": float(found.group(3)) if found else None,
        "exchanges": int(found.group(1).replace(",", "")) if found else None,
        "verdicts": int(found.group(2).replace(",", "")) if found else None,
        "command": "distillwatch " + " ".join(cmd[3:]),
        "load_before": before,
        "load_after": load(),
    }


def spark_pass(log: Path, accounts: Path, master: str, out: Path) -> dict[str, Any]:
    """``distillwatch scan --engine spark --spark-master MASTER`` on ``log`` in a child process.

    Wall time only: Spark's JVM is the child's own child, and its CPU time and memory are not
    reliably in the child's rusage. ``identical``: its verdicts file against the embedded
    scan's (``out`` is written next to it).
    """
    cmd = [sys.executable, "-m", "distillwatch", "scan", str(log), "--accounts", str(accounts)]
    cmd += ["--out", str(out), "--quiet", "--engine", "spark", "--spark-master", master]
    before = load()
    child = run_child(cmd, env={"COLUMNS": "160"})
    return {
        "master": master,
        "wall_s": round(child.wall_s, 1),
        "command": "distillwatch " + " ".join(cmd[3:]),
        "load_before": before,
        "load_after": load(),
    }


def _duckdb_row(d: dict[str, Any], exchanges: int, base_s: float) -> str:
    return (
        f"| DuckDB {d['duckdb']}, bare pass ({d['threads']} thread{'s' * (d['threads'] > 1)}) "
        f"| {d['query_s']:,.1f} s | {d['wall_s']:,.1f} s | {d['cpu_s']:,.1f} s "
        f"| {exchanges / d['query_s']:,.0f} | {d['peak_rss_bytes'] / 2**20:,.0f} MiB "
        f"| {d['query_s'] / base_s:,.1f} |"
    )


def report(r: dict[str, Any]) -> str:
    """The markdown section for ``docs/benchmarks.md``."""
    m, log, gen, db, sc = r["machine"], r["log"], r["generation"], r["duckdb"], r["scan"]
    mib = 2**20
    hydra = log.get("exchanges_by_profile", {}).get("cot-harvest-hydra", 0)
    what = (
        f"the first {log['exchanges']:,} exchanges (a prefix, `--prefix`) of a "
        f"{log['full_exchanges']:,}-exchange log"
        if log["prefix"]
        else f"{log['exchanges']:,} exchanges"
    )
    gen_text = (
        f"{gen['seconds']:,.0f} s wall, {gen['cpu_s']:,.0f} s CPU (peak RSS "
        f"{gen['peak_rss_bytes'] / mib:,.0f} MiB)"
        if gen.get("seconds") is not None
        else "not measured (log reused without meta.json)"
    )
    rows = [_duckdb_row(db, log["exchanges"], db["query_s"])]
    if r.get("duckdb_1thread"):
        rows.append(_duckdb_row(r["duckdb_1thread"], log["exchanges"], db["query_s"]))
    rows.append(
        f"| `distillwatch scan` (embedded, one process) | {sc['replay_s']:,.1f} s "
        f"| {sc['wall_s']:,.1f} s | {sc['cpu_s']:,.1f} s | {log['exchanges'] / sc['wall_s']:,.0f} "
        f"| {sc['peak_rss_bytes'] / mib:,.0f} MiB | {r['ratio_scan_duckdb']:,.0f} |"
    )
    for sp in r.get("spark") or []:  # `scan --engine spark`, one row per master
        same = "identical verdicts" if sp.get("identical") else "verdicts DIFFER"
        rows.append(
            f"| `scan --engine spark` ({sp['master']}; {same}) | — | {sp['wall_s']:,.1f} s | — "
            f"| {log['exchanges'] / sp['wall_s']:,.0f} | — "
            f"| {sp['wall_s'] / db['query_s']:,.0f} |"
        )
    return (
        "## Full scale, embedded (`bench/fullscale.py`)\n\n"
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores (shared with other users' "
        f"jobs: load average {r['duckdb']['load_before'][0]} before the DuckDB pass, "
        f"{sc['load_before'][0]} before the scan), {m['memory_gib']} GiB RAM, Python "
        f"{m['python']}, {m['system']}.\n\n"
        f"Log: scenario `fullscale` × {log['scale']:g}, seed {log['seed']}: {what}, "
        f"{log['accounts']:,} accounts ({log['campaign_accounts']:,} in the hydra campaign, "
        f"{hydra:,} exchanges, {hydra / log['exchanges']:.0%} of the log), "
        f"Parquet (zstd, {log['row_groups']:,} row groups) of {log['bytes'] / mib:,.0f} MiB. "
        f"The {'whole ' if log['prefix'] else ''}log was generated by `distillwatch simulate` "
        f"in {gen_text}.\n\n"
        "| pass over the same Parquet file | in-process time | wall time | CPU time "
        "| exchanges/s (wall) | peak RSS | × DuckDB |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        f"Both read the same {len(r['columns'])} columns ({', '.join(r['columns'])}) of the "
        "same file, back to back (the same page-cache state; the machine has room to cache "
        "the file). DuckDB "
        "computes one aggregate per column (`sum(strlen(…))`, `sum(…)`, `max(ts)`): the floor "
        "of reading and decoding them. In-process time: DuckDB's query, the scan's own replay "
        "timer; wall time, CPU time (user + system) and peak RSS (GNU `time`'s maximum "
        "resident set size) are each child process's own, interpreter start-up and writing "
        "verdicts and campaigns included. "
        "× DuckDB: wall time (the scan's, Spark's) or query time (DuckDB's) over the first "
        "DuckDB row's query time. On shared cores, CPU time is the steadier figure. "
        f"Command: `{r['command']}`."
    )


def _shown(arg: str) -> str:
    """An argument as the recorded command shows it: paths in the repository relative."""
    path = Path(arg).resolve()
    return str(path.relative_to(ROOT)) if "/" in arg and path.is_relative_to(ROOT) else arg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fullscale scenario scale")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / ".bench-cache")
    ap.add_argument("--sim", type=Path, help=f"reuse this folder's {LOG_NAME} and accounts.jsonl")
    ap.add_argument("--prefix", type=int, help="measure on the first N exchanges only")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="DuckDB")
    ap.add_argument("--generate-only", action="store_true", help="stop after generating")
    ap.add_argument(
        "--spark-master",
        help="also time `scan --engine spark` under these masters (comma-separated, e.g. "
        "'local[1],local[2]') and check its verdicts equal the embedded scan's",
    )
    ap.add_argument("--json", type=Path, help="results file (default: in the log's folder)")
    ap.add_argument("--record", action="store_true", help="write docs/benchmarks.md")
    args = ap.parse_args()

    folder = args.sim or args.work / f"fullscale-x{args.scale:g}-seed{args.seed}"
    full = folder / LOG_NAME
    meta_path = folder / "meta.json"
    if args.sim is not None and not full.is_file():
        sys.exit(f"error: {full}: no such file (--sim wants a folder with {LOG_NAME})")
    if not full.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = generate(folder, args.scale, args.seed)
    else:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        print(f"reusing {full}", flush=True)
    if args.generate_only:
        print(json.dumps(meta, indent=2))
        return
    accounts = folder / "accounts.jsonl"
    labels = [json.loads(ln) for ln in (folder / "labels.jsonl").open(encoding="utf-8")]
    full_rows = pq.ParquetFile(full).metadata.num_rows
    log = prefix_log(full, args.prefix) if args.prefix and args.prefix < full_rows else full
    pf = pq.ParquetFile(log)
    columns = check_schema(log, EXCHANGES, pf.schema_arrow)  # what `scan` reads
    n = pf.metadata.num_rows
    print(f"log: {log} ({n:,} exchanges, {log.stat().st_size / 2**20:,.0f} MiB)", flush=True)

    db = duckdb_pass(log, columns, args.threads)
    print(f"duckdb: {db['query_s']:.1f} s query, {db['wall_s']:.1f} s wall", flush=True)
    db1 = duckdb_pass(log, columns, 1) if args.threads > 1 else None  # as one core as the scan
    if db1 is not None:
        print(f"duckdb, 1 thread: {db1['query_s']:.1f} s query", flush=True)
    scan = scan_pass(log, accounts, folder / "verdicts.parquet")
    print(f"scan: {scan['wall_s']:.1f} s wall, peak RSS {scan['peak_rss_bytes'] / 2**20:,.0f} MiB")
    spark = []
    for master in (args.spark_master or "").split(",") if args.spark_master else []:
        name = master.replace("[", "").replace("]", "").replace("*", "all")
        out = folder / f"verdicts-spark-{name}.parquet"
        sp = spark_pass(log, accounts, master, out)
        sp["identical"] = out.read_bytes() == (folder / "verdicts.parquet").read_bytes()
        print(f"spark {master}: {sp['wall_s']:.1f} s wall, identical: {sp['identical']}")
        spark.append(sp)
    mix = composition(log, folder / "labels.jsonl")

    argv = " ".join(_shown(a) for a in sys.argv[1:])
    result = {
        "command": f"python bench/fullscale.py {argv}".strip(),
        "machine": machine(),
        "note": "2 cores shared with other users' jobs; load averages recorded per pass",
        "log": {
            "path": str(log),
            "scale": meta.get("scale", args.scale),
            "seed": meta.get("seed", args.seed),
            "exchanges": n,
            "full_exchanges": full_rows,
            "prefix": log != full,
            "accounts": len(labels),
            "campaign_accounts": sum(lb["profile"] == "cot-harvest-hydra" for lb in labels),
            "bytes": log.stat().st_size,
            "row_groups": pf.metadata.num_row_groups,
            "exchanges_by_profile": mix,
        },
        "generation": meta,
        "columns": columns,
        "duckdb": db,
        "duckdb_1thread": db1,
        "scan": scan,
        "ratio_scan_duckdb": round(scan["wall_s"] / db["query_s"], 1),
        "spark": spark,
    }
    out = args.json or folder / f"results-{result['machine']['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"ratio scan/DuckDB: {result['ratio_scan_duckdb']}×; results → {out}")
    if args.record:
        record_section(DOC, "fullscale", report(result))
        print(f"recorded in {DOC}")


if __name__ == "__main__":
    main()
