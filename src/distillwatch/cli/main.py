"""``distillwatch``: scan exchange logs for adversarial distillation, and the tools around it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distillwatch import __version__
from distillwatch.attribute import write_campaigns
from distillwatch.cli.errors import fail, handle_errors
from distillwatch.cli.render import action_counts, scan_progress, suspicious_table
from distillwatch.cli.scan import (
    ScanInput,
    ScanIntel,
    SparkScan,
    campaigns_of,
    campaigns_path,
    run_scan,
    run_spark_scan,
    write_report,
    write_verdicts,
)
from distillwatch.config import load_settings
from distillwatch.detect import ReplayResult
from distillwatch.log import KINDS, SkipReport, estimate_records, read_exchanges, read_records
from distillwatch.policy import load_policy

app = typer.Typer(
    name="distillwatch",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    help="Detect, attribute and stop adversarial distillation of model APIs.",
)


def _width() -> int | None:
    """Terminal width; 160 when output is piped (rich would assume 80 and squash tables)."""
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160


console = Console(highlight=False, soft_wrap=True, width=_width())

LogArg = Annotated[
    Path, typer.Argument(help="Exchange log: .jsonl, .jsonl.gz or .parquet.", show_default=False)
]


def _version(value: bool) -> None:
    if value:
        console.print(f"distillwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Detect, attribute and stop adversarial distillation of model APIs.

    The exchange-log format every command reads is described in docs/exchange-log.md.
    """


@app.command()
@handle_errors
def scan(
    log: Annotated[
        Path | None,
        typer.Argument(
            help="Exchange log: .jsonl, .jsonl.gz or .parquet (omit with --store).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Verdicts file to write (.jsonl, .jsonl.gz or .parquet)."),
    ] = Path("verdicts.jsonl"),
    accounts: Annotated[
        Path | None, typer.Option(help="Accounts file (sign-up metadata, tiers).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML (default: the shipped one).")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Read exchanges and accounts from this event store URL instead of a file."
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Count and report invalid records and carry on, instead of stopping.",
        ),
    ] = False,
    top: Annotated[int, typer.Option(min=0, help="Rows in the most-suspicious table.")] = 15,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    campaigns: Annotated[
        bool,
        typer.Option(
            "--campaigns/--no-campaigns",
            help="Link accounts into campaigns: verdicts carry campaign_id and campaigns.jsonl "
            "is written next to them.",
        ),
    ] = True,
    engine: Annotated[
        str,
        typer.Option(
            help="embedded (this process) or spark (PySpark: the \\[spark] extra; same verdicts).",
        ),
    ] = "embedded",
    table: Annotated[
        str | None,
        typer.Option(
            help="With --engine spark, read this Spark SQL relation instead of LOG: a table, "
            "a view or parquet.`s3a://bucket/log/` (the spec's columns).",
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option(
            help="Spark master for --engine spark (local[2], spark://host:7077, yarn; "
            "default: spark-submit's, else local[*]).",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Also write a self-contained HTML report: the verdict summary and a picture "
            "of each campaign with its evidence.",
        ),
    ] = None,
    intel: Annotated[
        list[Path] | None,
        typer.Option(
            "--intel",
            help="A signed intel bundle received (repeat the option for more): its indicators "
            "are matched in the replay, as in the gateway (docs/intel.md). Needs --members "
            "and --group-secret; rejected bundles are listed, not fatal unless none is valid.",
            show_default=False,
        ),
    ] = None,
    members: Annotated[
        Path | None,
        typer.Option(help="With --intel: members.yaml (trusted members, the trust policy)."),
    ] = None,
    group_secret: Annotated[
        Path | None,
        typer.Option("--group-secret", help="With --intel: the sharing group's secret file."),
    ] = None,
    sightings: Annotated[
        Path | None,
        typer.Option(
            help="With --intel: write the signed STIX sightings of the matches here: a file, "
            "or an existing folder (one envelope per publisher)."
        ),
    ] = None,
    member: Annotated[
        str | None, typer.Option(help="With --sightings: our member name (signs them).")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="With --sightings: our signing key (intel keygen).")
    ] = None,
) -> None:
    """Replay a log in time order and write one verdict per account.

    Every verdict is causal: [bold]first_action_ts[/] and [bold]exchanges_before_action[/] say when
    the account would first have been throttled or worse, using only what was seen before.
    Out-of-order logs are put in order first (out of core when large).
    """
    if sum(x is not None for x in (log, store, table)) != 1:
        raise fail("give exactly one of LOG, --store or --table")
    if engine not in ("embedded", "spark"):
        raise fail(f"unknown engine {engine!r}; one of: embedded, spark")
    if engine == "spark" and store is not None:
        raise fail("--engine spark reads a log file, a directory or --table, not --store")
    if engine != "spark" and table is not None:
        raise fail("--table needs --engine spark")
    received: ScanIntel | None = None
    if intel:
        if engine == "spark":
            raise fail("--intel needs --engine embedded (intel is not matched in Spark tasks)")
        received = ScanIntel.load(
            intel,
            members=members,
            group_secret=group_secret,
            sightings=sightings,
            member=member,
            key=key,
        )
        for path, reason in received.received.rejected:
            console.print(f"intel: {path}: {reason}", markup=False)
        console.print(
            f"intel: {len(received.received.bundles)} bundle(s) accepted "
            f"({', '.join(sorted(set(received.received.accepted)))}), "
            f"{len(received.received.rejected)} rejected",
            markup=False,
        )
    elif members or group_secret or sightings or member or key:
        raise fail("--members, --group-secret, --sightings, --member and --key go with --intel")
    settings = load_settings()
    pol = load_policy(policy)
    source = ScanInput(log=log, store_url=store, accounts=accounts, skip_invalid=skip_invalid)
    if engine == "spark":
        if not quiet:
            console.print(f"starting Spark ({spark_master or 'default master'}) …")
        result: ReplayResult | SparkScan = run_spark_scan(
            source, pol, master=spark_master, campaigns=campaigns, table=table
        )
    else:
        total = estimate_records(log) if log is not None else None
        with scan_progress(console) as progress:
            task = progress.add_task("scanning", total=total, visible=not quiet)

            def advance(n: int) -> None:
                if n < 0:
                    progress.reset(task, description="re-scanning in time order")
                else:
                    progress.advance(task, n)

            result = run_scan(
                source,
                pol,
                settings,
                on_progress=advance,
                campaigns=campaigns,
                intel=received.received if received is not None else None,
            )
            progress.update(task, total=result.exchanges, completed=result.exchanges)
        if received is not None:
            console.print(received.finish(result.engine), markup=False)
    write_verdicts(out, result.verdicts)
    found = result.campaigns if isinstance(result, SparkScan) else campaigns_of(result)
    if found is not None:
        where = campaigns_path(out)
        write_campaigns(where, found)
        console.print(f"{len(found):,} campaign{'s' if len(found) != 1 else ''} → {where}")
    if report is not None:
        write_report(
            report,
            result.verdicts,
            found,
            policy=pol,
            source=str(log if log is not None else "the event store"),
            exchanges=result.exchanges,
            seconds=result.seconds,
        )
        console.print(f"report → {report}")
    rate = result.exchanges / result.seconds if result.seconds else 0.0
    console.print(
        f"{result.exchanges:,} exchanges from {len(result.verdicts):,} accounts in "
        f"{result.seconds:.1f} s ({rate:,.0f} exchanges/s) → {out}"
    )
    if accounts is None and store is None:
        console.print(
            "no accounts file: sign-up signals (age, verification, shared cards, bursts) could "
            "not be computed; accounts were scored by the models fitted without them "
            "(pass --accounts for more power)"
        )
    if isinstance(result, ReplayResult) and result.sorted_externally:
        console.print(
            "the log was out of time order beyond the reorder window: "
            "it was sorted out of core and replayed in order"
        )
    if source.skips is not None:
        console.print(
            f"[yellow]{source.skips.summary()}[/]" if source.skips.total else "no invalid records"
        )
        for example in source.skips.examples:
            console.print(f"  {example}", markup=False)
    console.print(
        f"actions: {action_counts(result.verdicts)}; policy {pol.name} v{pol.version} ({pol.hash})"
    )
    if not quiet and top:
        console.print(suspicious_table(result.verdicts, top))


@app.command()
@handle_errors
def validate(
    path: Annotated[
        Path,
        typer.Argument(help="File to check (.jsonl, .jsonl.gz, .parquet).", show_default=False),
    ],
    kind: Annotated[
        str, typer.Option(help="Record kind: exchanges, accounts, labels or verdicts.")
    ] = "exchanges",
    max_errors: Annotated[int, typer.Option(min=1, help="Errors to list.")] = 20,
) -> None:
    """Check a file against the exchange-log spec; exit 1 if any record is invalid."""
    if kind not in KINDS:
        raise fail(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
    skips = SkipReport(keep_examples=max_errors)
    valid = disorder = 0
    last = None
    for batch in read_records(path, kind, skips=skips):
        valid += len(batch)
        if kind == "exchanges":
            for e in batch:
                if last is not None and e.ts < last:
                    disorder += 1
                last = e.ts if last is None or e.ts > last else last
    for example in skips.examples:
        console.print(example, markup=False)
    more = skips.total - len(skips.examples)
    if more > 0:
        console.print(f"… and {more} more")
    console.print(
        f"{path}: {valid:,} valid {kind} record(s), {skips.total:,} invalid", markup=False
    )
    if disorder:
        console.print(f"{disorder:,} exchange(s) out of time order (scan puts them in order)")
    if skips.total:
        raise typer.Exit(1)


@app.command()
@handle_errors
def ingest(
    log: LogArg,
    store: Annotated[
        str | None,
        typer.Option(help="Event store URL: a DuckDB file path, duckdb:///path, or postgresql://…"),
    ] = None,
    accounts: Annotated[Path | None, typer.Option(help="Accounts file to load too.")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Count and report invalid records and carry on.")
    ] = False,
) -> None:
    """Append a log to the event store (idempotent: exchanges already there are skipped)."""
    from distillwatch.log import read_accounts
    from distillwatch.store import open_store

    settings = load_settings()
    url = store or settings.store
    skips = SkipReport() if skip_invalid else None
    read = inserted = 0
    with open_store(url) as st:
        if accounts is not None:
            st.put_accounts(list(read_accounts(accounts).values()))
        for batch in read_exchanges(log, batch_size=settings.batch_size, skips=skips):
            read += len(batch)
            inserted += st.append_exchanges(batch)
        total = st.count_exchanges()
    console.print(
        f"{read:,} exchanges read, {inserted:,} new, {read - inserted:,} already "
        f"stored; the store holds {total:,}",
        markup=False,
    )
    if skips is not None:
        console.print(skips.summary(), markup=False)


@app.command()
@handle_errors
def simulate(
    scenario: Annotated[
        str,
        typer.Option(help="Scenario YAML file, or a packaged scenario: default, demo, evasive."),
    ] = "default",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for exchanges, accounts and labels.")
    ] = Path("sim-out"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 7,
    scale: Annotated[float, typer.Option(min=0.001, help="Multiplier on every population.")] = 1.0,
    split: Annotated[
        str, typer.Option(help="Data the traffic is built from: dev, test (held out) or all.")
    ] = "all",
    days: Annotated[
        float | None, typer.Option(min=0.01, help="Simulated days (default: the scenario's).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Simulate a labelled exchange log from a scenario (real prompts and traces).

    Writes exchanges.jsonl.gz, accounts.jsonl and labels.jsonl to --out in the exchange-log
    format; the same seed, scale and split give the same log.
    """
    from distillwatch.cli.simulate import run_simulate

    run_simulate(
        console,
        scenario=scenario,
        out=out,
        seed=seed,
        scale=scale,
        split=split,
        days=days,
        quiet=quiet,
    )


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the generated log and verdicts.")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option(help="Random seed of the traffic generator.")] = 7,
    scale: Annotated[float, typer.Option(min=0.01, help="Traffic volume multiplier.")] = 1.0,
    top: Annotated[int, typer.Option(min=0, help="Rows in the most-suspicious table.")] = 15,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live",
            help="Then replay the log over HTTP through `distillwatch serve` (loopback ports) "
            "and show it stopping the campaigns live.",
        ),
    ] = False,
    clock: Annotated[
        str,
        typer.Option(
            help="With --live: 'replay' (the gateway takes each exchange's logged time) or "
            "'arrival' (its arrival time, so two days are compressed into seconds)."
        ),
    ] = "replay",
) -> None:
    """Generate a small realistic log from real prompts, scan it, and show what was caught."""
    from distillwatch.cli.demo import run_demo

    if clock not in ("replay", "arrival"):
        raise fail(f"--clock must be 'replay' or 'arrival', got {clock!r}")
    run_demo(console, out=out, seed=seed, scale=scale, top=top)
    if live:
        try:
            from distillwatch.cli.demo_live import live_step
        except ImportError as e:
            raise fail(
                f"--live needs the gateway's dependencies ({e.name} is missing): "
                "pip install 'distillwatch[gateway]'"
            ) from e
        live_step(console, out=out, clock="replay" if clock == "replay" else "arrival")


@app.command()
@handle_errors
def serve(
    upstream: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible upstream base URL, e.g. http://127.0.0.1:8000/v1."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Gateway config (YAML or JSON).")] = None,
    keys: Annotated[
        Path | None, typer.Option(help="API keys file: key → account (YAML or JSON).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port to listen on.")] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="Folder of the exchange log (JSONL segments).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the gateway: proxy an OpenAI-compatible API, log every exchange, enforce the policy.

    See docs/gateway.md for the config file, the actions and the durability guarantee.
    """
    from distillwatch.cli.serve import run_serve

    run_serve(
        console,
        upstream=upstream,
        config=config,
        keys=keys,
        host=host,
        port=port,
        log_dir=log_dir,
        log_level=log_level,
    )


def _register_subcommands() -> None:
    from distillwatch.cli.bench import bench_app

    app.add_typer(bench_app, name="bench")
    from distillwatch.cli.intel import intel_app

    app.add_typer(intel_app, name="intel")


_register_subcommands()
