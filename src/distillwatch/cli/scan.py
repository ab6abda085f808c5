"""The scan use case: a log (or a store) through the engine into a verdicts file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from distillwatch.attribute import Campaign, CampaignLinker
from distillwatch.attribute.campaign_graph import with_graphs
from distillwatch.attribute.factory import engine_factory
from distillwatch.bench.scan_report import write_scan_report
from distillwatch.config import Settings
from distillwatch.detect import Engine, ReplayResult, replay
from distillwatch.log import SkipReport, open_writer, read_accounts, read_exchanges
from distillwatch.policy import Policy
from distillwatch.records import Account, Exchange, Verdict
from distillwatch.store import open_store


@dataclass
class ScanInput:
    """Where exchanges and accounts come from."""

    log: Path | None
    store_url: str | None
    accounts: Path | None
    skip_invalid: bool
    skips: SkipReport | None = field(default=None, init=False)

    def load_accounts(self) -> dict[str, Account]:
        accounts: dict[str, Account] = {}
        if self.store_url:
            with open_store(self.store_url) as store:
                accounts.update(store.accounts())
        if self.accounts:
            accounts.update(read_accounts(self.accounts))
        return accounts

    def batches(self, batch_size: int) -> Iterator[list[Exchange]]:
        """A fresh pass over the input; invalid-record counts restart with it."""
        if self.log is not None:
            self.skips = SkipReport() if self.skip_invalid else None
            yield from read_exchanges(self.log, batch_size=batch_size, skips=self.skips)
            return
        assert self.store_url is not None
        with open_store(self.store_url) as store:
            yield from store.iter_exchanges(batch_size=batch_size)


def run_scan(
    source: ScanInput,
    policy: Policy,
    settings: Settings,
    on_progress: Callable[[int], None] | None = None,
    campaigns: bool = True,
) -> ReplayResult:
    """Replay the input through a fresh engine; ``campaigns`` links accounts into campaigns
    (the engine's linker is then a ``CampaignLinker``: see ``campaigns_of``)."""
    accounts = source.load_accounts()

    return replay(
        lambda: source.batches(settings.batch_size),
        engine_factory(policy, accounts, campaigns=campaigns),
        lateness=settings.lateness_s,
        on_progress=on_progress,
    )


@dataclass
class SparkScan:
    """A scan run by ``--engine spark`` (``detect.spark``): the same verdicts and campaigns."""

    verdicts: list[Verdict]
    campaigns: list[Campaign] | None
    exchanges: int
    seconds: float


def run_spark_scan(
    source: ScanInput,
    policy: Policy,
    *,
    master: str | None = None,
    campaigns: bool = True,
    table: str | None = None,
) -> SparkScan:
    """``run_scan`` on Spark: the log (or ``table``) is read and ordered by Spark, the engine
    runs in a task."""
    from distillwatch.detect.spark import spark_replay, spark_session

    log = source.log if table is None else table
    assert log is not None

    def finish(engine: Engine) -> list[bytes]:  # runs in the Spark task: pickled, no encoder
        return [msgspec.msgpack.encode(c) for c in engine_campaigns(engine) or []]

    spark = spark_session(master)
    result = spark_replay(
        spark,
        log,
        engine_factory(policy, source.load_accounts(), campaigns=campaigns),
        finish=finish,
        skip_invalid=source.skip_invalid,
    )
    source.skips = result.skips
    decode = msgspec.msgpack.Decoder(Campaign).decode
    return SparkScan(
        verdicts=result.verdicts,
        campaigns=[decode(b) for b in result.extras] if campaigns else None,
        exchanges=result.exchanges,
        seconds=result.seconds,
    )


def campaigns_of(result: ReplayResult) -> list[Campaign] | None:
    """The detected campaigns of a scan, each with the ``graph`` its report picture draws
    (None when it ran without ``campaigns``)."""
    return engine_campaigns(result.engine)


def engine_campaigns(engine: Engine) -> list[Campaign] | None:
    """``campaigns_of`` for an engine at the end of its replay (also run in a Spark task)."""
    linker = engine.linker
    return with_graphs(linker) if isinstance(linker, CampaignLinker) else None


def write_report(
    path: Path,
    verdicts: list[Verdict],
    campaigns: list[Campaign] | None,
    *,
    policy: Policy,
    source: str,
    exchanges: int,
    seconds: float,
) -> None:
    """``scan --report``: the verdict summary and a picture per campaign in one HTML page."""
    rate = exchanges / seconds if seconds else 0.0
    about = [
        f"Input: {source}. {exchanges:,} exchanges from {len(verdicts):,} accounts replayed "
        f"in time order in {seconds:.1f} s ({rate:,.0f} exchanges/s).",
        f"Policy: {policy.name} v{policy.version} ({policy.hash}).",
    ]
    write_scan_report(path, verdicts, campaigns, about)


def campaigns_path(verdicts: Path) -> Path:
    """Where ``scan`` writes the campaigns: ``campaigns.jsonl`` next to the verdicts file.

    >>> campaigns_path(Path("out/verdicts.parquet")).as_posix()
    'out/campaigns.jsonl'
    """
    return verdicts.with_name("campaigns.jsonl")


def write_verdicts(path: Path, verdicts: Iterable[Verdict]) -> None:
    """Write sorted by account, atomically: a failed run never leaves half a file behind."""
    tmp = path.with_name(f".tmp-{path.name}")  # keeps the suffix that picks the format
    ordered = sorted(verdicts, key=lambda v: v.account_id)
    try:
        with open_writer(tmp, "verdicts") as w:
            for i in range(0, len(ordered), 8192):
                w.write(ordered[i : i + 8192])
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
