"""Every traffic profile, registered by a stable id: what scenario files name.

A profile is a builder ``(ctx, count, **knobs) -> Cohort`` and the label its accounts get.
The builder's keyword arguments are its knobs; their annotations are the knobs' types and
bounds, checked when a scenario is loaded (``scenario.knob_model``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Literal

from distillwatch.bench import attacks, legit, negatives, reseller, sweep
from distillwatch.bench.population import Builder


@dataclass(frozen=True)
class Profile:
    """A registered behaviour: its id, ground-truth label and builder."""

    id: str
    label: Literal["legit", "attack"]
    build: Builder

    @property
    def summary(self) -> str:
        """The first line of the builder's docstring."""
        return (inspect.getdoc(self.build) or "").splitlines()[0]

    def knobs(self) -> dict[str, Any]:
        """Knob names and their defaults."""
        sig = inspect.signature(self.build)
        return {n: p.default for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def _table(*profiles: Profile) -> dict[str, Profile]:
    return {p.id: p for p in profiles}


PROFILES: dict[str, Profile] = _table(
    Profile("chat", "legit", legit.chat),
    Profile("developer", "legit", legit.developer),
    Profile("app-backend", "legit", legit.app_backend),
    Profile("enterprise-eval", "legit", legit.enterprise_eval),
    Profile("cron", "legit", legit.cron),
    Profile("nat-group", "legit", negatives.nat_group),
    Profile("vpn-user", "legit", negatives.vpn_user),
    Profile("researcher", "legit", negatives.researcher),
    Profile("cot-harvest-hydra", "attack", attacks.cot_harvest),
    Profile("low-and-slow", "attack", attacks.low_and_slow),
    Profile("capability-sweep", "attack", sweep.capability_sweep),
    Profile("reseller", "attack", reseller.reseller),
    Profile("naive-scraper", "attack", attacks.naive_scraper),
)
