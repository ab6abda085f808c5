"""The scan use case: a log (or a store) through the engine into a verdicts file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distillwatch.attribute import Campaign, CampaignLinker
from distillwatch.attribute.factory import engine_factory
from distillwatch.config import Settings
from distillwatch.detect import ReplayResult, replay
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


def campaigns_of(result: ReplayResult) -> list[Campaign] | None:
    """The detected campaigns of a scan (None when it ran without ``campaigns``)."""
    linker = result.engine.linker
    return list(linker.detected()) if isinstance(linker, CampaignLinker) else None


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
