"""The scan use case: a log (or a store) through the engine into a verdicts file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from distillwatch.attribute import Campaign, CampaignLinker
from distillwatch.attribute.campaign_graph import with_graphs
from distillwatch.attribute.factory import engine_factory
from distillwatch.bench.scan_report import write_scan_report
from distillwatch.config import Settings
from distillwatch.detect import Engine, ReplayResult, replay
from distillwatch.errors import ConfigError
from distillwatch.log import SkipReport, open_writer, read_accounts, read_exchanges
from distillwatch.policy import Policy
from distillwatch.records import Account, Exchange, Verdict
from distillwatch.store import open_store

if TYPE_CHECKING:  # share/ needs the [share] extra: imported only with --intel
    from distillwatch.share.files import ReceivedIntel
    from distillwatch.share.match import IntelMatcher


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
    intel: ReceivedIntel | None = None,
) -> ReplayResult:
    """Replay the input through a fresh engine; ``campaigns`` links accounts into campaigns
    (the engine's linker is then a ``CampaignLinker``: see ``campaigns_of``); ``intel``
    (received bundles, verified) is matched by an ``IntelMatcher`` beside it, with the trust
    policy's ceiling, exactly as the gateway's engine does (``intel_matcher_of``)."""
    accounts = source.load_accounts()
    make = engine_factory(policy, accounts, campaigns=campaigns)
    if intel is not None:
        plain, received = make, intel

        def make() -> Engine:  # a fresh matcher (and index) with each fresh engine
            engine = plain()
            received.matcher(accounts).attach(engine, ceiling=True)
            return engine

    return replay(
        lambda: source.batches(settings.batch_size),
        make,
        lateness=settings.lateness_s,
        on_progress=on_progress,
    )


@dataclass
class ScanIntel:
    """``scan --intel``: the received bundles, verified, and where the sightings go."""

    received: ReceivedIntel
    sightings: Path | None = None
    member: str | None = None
    key: Path | None = None

    @classmethod
    def load(
        cls,
        bundles: list[Path],
        *,
        members: Path | None,
        group_secret: Path | None,
        sightings: Path | None = None,
        member: str | None = None,
        key: Path | None = None,
    ) -> ScanIntel:
        """Verify the bundles now (``intel import``'s verification); a one-line error when an
        option is missing or no bundle is valid."""
        if members is None or group_secret is None:
            raise ConfigError("--intel needs --members and --group-secret")
        if sightings is not None and (member is None or key is None):
            raise ConfigError("--sightings needs --member and --key (they sign the sightings)")
        try:
            from distillwatch.share.files import load_intel, parse_now
            from distillwatch.share.sign import load_private
        except ImportError as e:
            raise ConfigError(
                f"--intel needs the intel exchange's dependencies ({e.name} is missing): "
                "pip install 'distillwatch[share]'"
            ) from None
        if key is not None:
            load_private(key)  # a bad key stops the scan before it runs, not after
        received = load_intel(
            bundles, members=members, group_secret=group_secret, now=parse_now(None)
        )
        return cls(received, sightings, member, key)

    def finish(self, engine: Engine) -> str:
        """After the scan: write the sightings (if asked) and say what matched."""
        from distillwatch.share.files import write_sightings

        matcher = intel_matcher_of(engine)
        assert matcher is not None
        t = engine.last_t or self.received.now.timestamp()
        matched = sum(1 for aid in matcher.hits if matcher.matched(aid, t))
        corroborated = sum(1 for aid in matcher.hits if matcher.corroborated(aid, t))
        text = (
            f"intel: {matched:,} account(s) matched received indicators "
            f"({corroborated:,} corroborated)"
        )
        if self.sightings is not None:
            n = write_sightings(
                self.sightings,
                matcher,
                member=self.member,
                key=self.key,
                now=self.received.now,
            )
            text += f"; {n} sighting(s) → {self.sightings}"
        return text


def intel_matcher_of(engine: Engine) -> IntelMatcher | None:
    """The received-intel matcher ``run_scan`` attached to ``engine``, if any."""
    from distillwatch.share.match import IntelMatcher

    return next((x for x in engine.linkers if isinstance(x, IntelMatcher)), None)


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
    from distillwatch.detect.spark import log_files, spark_replay, spark_session

    log = source.log if table is None else table
    assert log is not None
    if isinstance(log, Path):
        log_files(log)  # a missing input fails before Spark starts, as a bad accounts file does
    new_engine = engine_factory(policy, source.load_accounts(), campaigns=campaigns)

    def finish(engine: Engine) -> list[bytes]:  # runs in the Spark task: pickled, no encoder
        return [msgspec.msgpack.encode(c) for c in engine_campaigns(engine) or []]

    spark = spark_session(master)
    result = spark_replay(
        spark,
        log,
        new_engine,
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
