"""``bench detect``: held-out traffic through distillwatch and the baselines, scored alike.

1. generate the scenario's traffic from the ``test`` split of the data (held-out sources and
   the test half of every other source), and calibration traffic from the ``dev`` split;
2. replay the test log causally through distillwatch (``detect.replay``, the code ``scan``
   runs), again with prompt text removed (metadata-only), again without the accounts file
   (no-accounts: the spec makes it optional), and through each baseline, which calibrates on
   the dev log's legitimate accounts only;
3. score every system's verdicts against the labels with the same code (``metrics``) and
   write ``metrics.json``, ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from distillwatch.attribute.campaign_graph import with_graphs
from distillwatch.attribute.campaigns import Campaign
from distillwatch.attribute.factory import engine_factory
from distillwatch.attribute.linker import CampaignLinker
from distillwatch.bench.metrics import Metrics, activity, evaluate, leakage_curve, roc_points
from distillwatch.bench.report import ReportPaths, write_report
from distillwatch.bench.scenario import load_scenario
from distillwatch.bench.traffic import Generated, generate
from distillwatch.detect import replay
from distillwatch.errors import ConfigError
from distillwatch.log import read_accounts, read_exchanges, read_labels
from distillwatch.policy import Policy, load_policy
from distillwatch.records import Exchange, Verdict

SYSTEMS = (
    "distillwatch",
    "distillwatch-metadata-only",
    "distillwatch-no-accounts",
    "rate-limit",
    "prada",
    "mmd",
)
Progress = Callable[[str], None]


@dataclass
class BenchConfig:
    """What to run; ``systems`` is a subset of ``SYSTEMS``."""

    scenario: str
    out: Path
    split: str = "test"
    seed: int = 7
    scale: float = 1.0
    days: float | None = None
    systems: tuple[str, ...] = SYSTEMS
    policy: Path | None = None
    calibration_scale: float = 0.25
    campaigns: bool = True
    """Whether distillwatch links accounts into campaigns (off: the per-account ablation)."""
    data_dir: Path | None = None
    use_shared_data: bool = True


@dataclass
class BenchResult:
    metrics: list[Metrics]
    report: ReportPaths
    timings: dict[str, float] = field(default_factory=dict)


def _strip(batches: Iterable[list[Exchange]]) -> Iterator[list[Exchange]]:
    """The same exchanges without prompt or response text (a metadata-only provider)."""
    for batch in batches:
        yield [msgspec.structs.replace(e, request=None, response_text=None) for e in batch]


def _log(gen: Generated) -> Callable[[], Iterator[list[Exchange]]]:
    return lambda: read_exchanges(gen.exchanges_path)


def _generate(cfg: BenchConfig, split: str, seed: int, scale: float, say: Progress) -> Generated:
    scenario = load_scenario(cfg.scenario)
    folder = cfg.out / f"log-{scenario.name}-{split}-seed{seed}-x{scale:g}"
    say(f"generating {scenario.name} traffic ({split} split, seed {seed}, scale {scale:g})")
    return generate(
        folder,
        scenario=scenario,
        seed=seed,
        scale=scale,
        days=cfg.days,
        split=split,
        data_dir=cfg.data_dir,
        use_shared_data=cfg.use_shared_data,
    )


def _benign(dev: Generated) -> Iterator[Exchange]:
    """The dev log's exchanges from legitimate accounts: what baselines calibrate on."""
    labels = read_labels(dev.labels_path)
    for batch in read_exchanges(dev.exchanges_path):
        for e in batch:
            lb = labels.get(e.account_id)
            if lb is not None and lb.label == "legit":
                yield e


def _distillwatch(
    log: Callable[[], Iterable[list[Exchange]]],
    policy: Policy,
    accounts: dict[str, Any],
    campaigns: bool = True,
) -> tuple[list[Verdict], list[Campaign]]:
    """Verdicts, and the detected campaigns with their report pictures' graphs."""
    result = replay(log, engine_factory(policy, accounts, campaigns=campaigns))
    linker = result.engine.linker
    found = with_graphs(linker) if isinstance(linker, CampaignLinker) else []
    return result.verdicts, found


def _baseline(
    name: str, accounts: dict[str, Any], calibration: Callable[[], Iterator[Exchange]]
) -> Any:
    from distillwatch.bench.baselines import create_baseline

    base = create_baseline(name, accounts=accounts)
    base.calibrate(calibration())
    return base


def run_bench(cfg: BenchConfig, say: Progress = lambda _: None) -> BenchResult:
    unknown = set(cfg.systems) - set(SYSTEMS)
    if unknown:
        raise ConfigError(
            f"unknown system(s) {', '.join(sorted(unknown))}; known: {', '.join(SYSTEMS)}"
        )
    if cfg.split not in ("dev", "test", "all"):
        raise ConfigError(f"split must be dev, test or all, got {cfg.split!r}")
    policy = load_policy(cfg.policy)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    test = _generate(cfg, cfg.split, cfg.seed, cfg.scale, say)
    timings["generate"] = time.perf_counter() - t0
    labels = read_labels(test.labels_path)
    accounts = read_accounts(test.accounts_path)
    log = _log(test)
    act = activity(log())

    dev: Generated | None = None
    verdicts: dict[str, list[Verdict]] = {}
    found: list[Campaign] | None = None
    for system in cfg.systems:
        say(f"replaying through {system}")
        t0 = time.perf_counter()
        if system == "distillwatch":
            verdicts[system], found = _distillwatch(log, policy, accounts, cfg.campaigns)
        elif system == "distillwatch-metadata-only":
            verdicts[system], _ = _distillwatch(
                lambda: _strip(log()), policy, accounts, cfg.campaigns
            )
        elif system == "distillwatch-no-accounts":  # no sign-up metadata, no tiers
            verdicts[system], _ = _distillwatch(log, policy, {}, cfg.campaigns)
        else:
            if dev is None:
                dev_seed = cfg.seed + 1_000_003  # other accounts, other draws
                dev = _generate(cfg, "dev", dev_seed, cfg.calibration_scale * cfg.scale, say)
            from distillwatch.bench.baselines import run_baseline

            base = _baseline(system, accounts, partial(_benign, dev))
            verdicts[system] = run_baseline(base, log(), accounts=list(accounts))
        timings[system] = time.perf_counter() - t0

    say("scoring")
    metrics = [evaluate(v, labels, act, system=s) for s, v in verdicts.items()]
    roc = {s: roc_points(v, labels, act) for s, v in verdicts.items()}
    curves = None
    if "distillwatch" in verdicts:
        curves = leakage_curve(log(), verdicts["distillwatch"], labels)
    meta = {
        "scenario": cfg.scenario,
        "split": cfg.split,
        "seed": cfg.seed,
        "scale": cfg.scale,
        "exchanges": test.exchanges,
        "legit_accounts": test.legit_accounts,
        "attack_accounts": test.attack_accounts,
        "policy": f"{policy.name} v{policy.version} ({policy.hash})",
        "campaigns": "linked" if cfg.campaigns else "off",
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "date": datetime.now(UTC).date().isoformat(),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    pictures = (verdicts["distillwatch"], found) if found is not None and cfg.campaigns else None
    paths = write_report(cfg.out / "report", metrics, curves, roc, meta, campaigns=pictures)
    return BenchResult(metrics, paths, timings)
