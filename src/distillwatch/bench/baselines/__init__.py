"""Baselines: the anchors distillwatch must beat, replayed causally in the same benchmark.

Registered by stable id in ``BASELINES``:

* ``rate-limit`` — the status quo: per-account requests-per-minute and per-day limits by tier
  (``rate_limit.py``);
* ``prada`` — PRADA (Juuti et al., EuroS&P 2019), Shapiro-Wilk normality of nearest-prompt
  distances, adapted to prompt embeddings (``prada.py``);
* ``mmd`` — a benign-calibrated MMD window test over prompt embeddings (Liu, Guo & Dong 2026,
  arXiv:2606.05725) (``mmd.py``).

Each follows the ``Baseline`` contract (``driver.py``); ``run_baseline`` replays a log through
one and returns spec ``Verdict`` records. The text baselines share one prompt embedding
(``embed.py``) and skip exchanges without prompt text, saying so in their reasons.

>>> base = create_baseline("prada")
>>> base.name, sorted(BASELINES)
('prada', ['mmd', 'prada', 'rate-limit'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from distillwatch.bench.baselines.driver import (
    Baseline,
    Observation,
    ReplayOrderError,
    run_baseline,
)
from distillwatch.bench.baselines.embed import PromptEmbedder
from distillwatch.bench.baselines.mmd import MmdBaseline
from distillwatch.bench.baselines.prada import PradaBaseline
from distillwatch.bench.baselines.rate_limit import DEFAULT_LIMITS, Limit, RateLimitBaseline
from distillwatch.errors import ConfigError
from distillwatch.records import Account

BASELINES: dict[str, Callable[..., Baseline]] = {
    RateLimitBaseline.name: RateLimitBaseline,
    PradaBaseline.name: PradaBaseline,
    MmdBaseline.name: MmdBaseline,
}


def create_baseline(
    name: str, *, accounts: Mapping[str, Account] | None = None, **options: Any
) -> Baseline:
    """A fresh baseline by id; ``accounts`` (sign-up metadata) gives the rate limiter tiers."""
    factory = BASELINES.get(name)
    if factory is None:
        raise ConfigError(f"unknown baseline {name!r}; known: {', '.join(sorted(BASELINES))}")
    return factory(accounts, **options)


__all__ = [
    "BASELINES",
    "DEFAULT_LIMITS",
    "Baseline",
    "Limit",
    "MmdBaseline",
    "Observation",
    "PradaBaseline",
    "PromptEmbedder",
    "RateLimitBaseline",
    "ReplayOrderError",
    "create_baseline",
    "run_baseline",
]
