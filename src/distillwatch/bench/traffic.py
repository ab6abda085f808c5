"""The generator: a scenario's populations written as an exchange log (spec v1).

``generate`` builds every population's cohort (``profiles.PROFILES``), then merges all
streams by time (a heap over one pending exchange per stream), so memory stays
O(accounts) however long the log. Prompts and traces come from the data ``split`` asked for
(``sources``): the benchmark reports on ``test`` and tunes on ``dev``.

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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from distillwatch.bench.population import Cohort, Context, Prompts
from distillwatch.bench.profiles import PROFILES, Profile
from distillwatch.bench.scenario import Population, Scenario, load_scenario, validate_scenario
from distillwatch.bench.sources import check_split, find_data_dir, load_pools, load_traces
from distillwatch.bench.world import TokenModel, World
from distillwatch.errors import ConfigError
from distillwatch.log import is_parquet, open_writer
from distillwatch.records import Exchange

__all__ = [
    "DEMO",
    "PROFILES",
    "Generated",
    "Population",
    "Profile",
    "Scenario",
    "generate",
    "load_scenario",
]

DEMO = load_scenario("demo")
EXCHANGES_NAME = "exchanges.jsonl.gz"
ROW_GROUP = 65_536  # exchanges per Parquet row group (~40 MB uncompressed, ~13 MB zstd)


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
    scenario: Scenario | str | Path = DEMO,
    seed: int = 7,
    scale: float = 1.0,
    days: float | None = None,
    split: str = "all",
    data_dir: Path | None = None,
    use_shared_data: bool = True,
    batch: int = 4096,
    on_progress: Callable[[int], None] | None = None,
    exchanges_name: str = EXCHANGES_NAME,
    row_group: int = ROW_GROUP,
) -> Generated:
    """Write ``exchanges.jsonl.gz``, ``accounts.jsonl`` and ``labels.jsonl`` to ``out_dir``.

    ``scenario`` is a ``Scenario``, a scenario file or a packaged scenario's name. Prompts
    and traces come from ``data_dir``, else ``shared/data`` when found (unless
    ``use_shared_data`` is false), else the packaged sample; ``split`` picks ``dev``,
    ``test`` or ``all`` of them. ``exchanges_name`` is the exchanges file's name in
    ``out_dir``; its suffix picks the format (``exchanges.parquet``: Parquet, written
    ``row_group`` exchanges at a time, one row group each, so memory stays bounded).
    """
    if scale <= 0:
        raise ConfigError(f"scale must be positive, got {scale}", key="scale")
    if days is not None and days <= 0:
        raise ConfigError(f"days must be positive, got {days}", key="days")
    if row_group < 1:
        raise ConfigError(f"row_group must be positive, got {row_group}", key="row_group")
    part = check_split(split)
    if isinstance(scenario, Scenario):
        scenario = validate_scenario(scenario)
    else:
        scenario = load_scenario(scenario)
    if data_dir is None and use_shared_data:
        data_dir = find_data_dir()
    sc = scenario.scaled(scale)
    span = days if days is not None else sc.days
    world = World(
        seed=seed,
        start=sc.start,
        end=sc.start + timedelta(days=span),
        tokens=TokenModel(load_traces(data_dir, part)),
        release_at=sc.start + timedelta(days=min(sc.release_after_days, span * 0.6)),
    )
    prompts = Prompts.from_pools(load_pools(data_dir, part))
    cohorts: list[Cohort] = []
    for pop in sc.populations:
        ctx = Context(world, prompts, random.Random(f"{seed}/{pop.label}"), pop.label)
        cohorts.append(PROFILES[pop.profile].build(ctx, pop.count, **pop.knobs))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / exchanges_name, out_dir / "accounts.jsonl", out_dir / "labels.jsonl")
    if is_parquet(paths[0]):
        batch = row_group  # each write is one row group: a few big ones, not thousands
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
