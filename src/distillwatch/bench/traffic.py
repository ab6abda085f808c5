"""Scenarios and the generator that writes them as an exchange log (spec v1).

``generate`` merges every population's streams by time (a heap over one pending exchange
per stream), so memory stays O(accounts) however long the log.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     out = generate(Path(d), seed=1, scale=0.05, days=0.25)
...     out.exchanges > 0 and out.attack_accounts > 0
True
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from distillwatch.bench import attacks, legit
from distillwatch.bench.population import Builder, Cohort, Context, Prompts
from distillwatch.bench.sources import find_data_dir, load_pools, load_traces
from distillwatch.bench.world import TokenModel, World
from distillwatch.errors import ConfigError
from distillwatch.log import open_writer
from distillwatch.records import Exchange

PROFILES: dict[str, tuple[str, Builder]] = {
    "chat": ("legit", legit.chat),
    "developer": ("legit", legit.developer),
    "app-backend": ("legit", legit.app_backend),
    "enterprise-eval": ("legit", legit.enterprise_eval),
    "cron": ("legit", legit.cron),
    "cot-harvest-hydra": ("attack", attacks.cot_harvest),
    "naive-scraper": ("attack", attacks.naive_scraper),
}


@dataclass(frozen=True)
class Population:
    """``count`` accounts of ``profile``, with the profile's knobs."""

    profile: str
    count: int
    knobs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.profile


@dataclass(frozen=True)
class Scenario:
    name: str
    populations: tuple[Population, ...]
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)
    days: float = 2.0
    release_after_days: float = 1.25  # when the new model appears

    def scaled(self, scale: float) -> Scenario:
        pops = tuple(
            Population(p.profile, max(1, round(p.count * scale)), p.knobs, p.name)
            for p in self.populations
            if p.count > 0
        )
        return Scenario(self.name, pops, self.start, self.days, self.release_after_days)


DEMO = Scenario(
    "demo",
    (
        Population("chat", 150),
        Population("developer", 40),
        Population("app-backend", 3),
        Population("enterprise-eval", 3),
        Population("cron", 6),
        Population("cot-harvest-hydra", 15),
        Population("naive-scraper", 1),
    ),
)


@dataclass
class Generated:
    """Where the log went and what is in it."""

    exchanges_path: Path
    accounts_path: Path
    labels_path: Path
    exchanges: int
    legit_accounts: int
    attack_accounts: int


def _merge(streams: list[Iterator[Exchange]]) -> Iterator[Exchange]:
    return heapq.merge(*streams, key=lambda e: (e.ts, e.id))


def generate(
    out_dir: Path,
    *,
    scenario: Scenario = DEMO,
    seed: int = 7,
    scale: float = 1.0,
    days: float | None = None,
    data_dir: Path | None = None,
    use_shared_data: bool = True,
    batch: int = 4096,
    on_progress: Callable[[int], None] | None = None,
) -> Generated:
    """Write ``exchanges.jsonl.gz``, ``accounts.jsonl`` and ``labels.jsonl`` to ``out_dir``.

    Prompts and traces come from ``data_dir``, else ``shared/data`` when found (unless
    ``use_shared_data`` is false), else the packaged sample.
    """
    if scale <= 0:
        raise ConfigError(f"scale must be positive, got {scale}")
    if data_dir is None and use_shared_data:
        data_dir = find_data_dir()
    sc = scenario.scaled(scale)
    span = days if days is not None else sc.days
    world = World(
        seed=seed,
        start=sc.start,
        end=sc.start + timedelta(days=span),
        tokens=TokenModel(load_traces(data_dir)),
        release_at=sc.start + timedelta(days=min(sc.release_after_days, span * 0.6)),
    )
    prompts = Prompts.from_pools(load_pools(data_dir))
    cohorts: list[Cohort] = []
    for pop in sc.populations:
        if pop.profile not in PROFILES:
            known = ", ".join(sorted(PROFILES))
            raise ConfigError(f"unknown profile {pop.profile!r}; known: {known}")
        ctx = Context(world, prompts, random.Random(f"{seed}/{pop.label}"), pop.label)
        try:
            cohorts.append(PROFILES[pop.profile][1](ctx, pop.count, **pop.knobs))
        except TypeError as e:
            raise ConfigError(f"population {pop.label!r}: {e}") from e
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "exchanges.jsonl.gz", out_dir / "accounts.jsonl", out_dir / "labels.jsonl")
    with open_writer(paths[1], "accounts") as w:
        w.write(a for c in cohorts for a in c.accounts)
    with open_writer(paths[2], "labels") as w:
        w.write(lb for c in cohorts for lb in c.labels)
    n = 0
    with open_writer(paths[0], "exchanges") as w:
        pending: list[Exchange] = []
        for ex in _merge([s for c in cohorts for s in c.streams]):
            pending.append(ex)
            if len(pending) >= batch:
                w.write(pending)
                n += len(pending)
                pending = []
                if on_progress is not None:
                    on_progress(n)
        w.write(pending)
        n += len(pending)
    labels = [lb for c in cohorts for lb in c.labels]
    attack = sum(lb.label == "attack" for lb in labels)
    return Generated(*paths, n, len(labels) - attack, attack)
