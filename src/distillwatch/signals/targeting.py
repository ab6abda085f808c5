"""Targeting signals: how fast an account moves its traffic to a newly released model.

Distillers want the newest capability first and switch pipelines to a new model within
hours of its release; most customers keep using what their application was built and
tested on. Researchers and enthusiasts switch early too, so the evidence is capped.

The population learns causally when each model was first *served* (a misspelt model name
that fails is not a release). Models already in use during the first ``warmup`` hours of
the log were there before it started, so they never count as new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, PopulationTail, computed  # noqa: F401 (examples)
from distillwatch.signals.registry import register
from distillwatch.signals.shares import ShareSignal, ShareState

HOUR = 3_600.0


class ModelReleases:
    """When each model was first served, and which of them count as new releases.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> r = ModelReleases(warmup=10.0)
    >>> def ex(model): return Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC),
    ...                                account_id="a", ip="192.0.2.1", model=model)
    >>> r.observe(ex("old"), 0.0), r.observe(ex("new"), 50.0), r.latest
    (None, 50.0, 50.0)
    """

    def __init__(self, warmup: float = 12 * HOUR, max_models: int = 10_000) -> None:
        self.warmup = warmup
        self.max_models = max_models
        self.start: float | None = None
        self.first_seen: dict[str, float] = {}
        """Model → first time served, or −inf for models in use since the log started."""
        self.latest: float | None = None
        """First appearance of the newest release."""

    def observe(self, exchange: Exchange, t: float) -> float | None:
        """Fold one exchange in; the first appearance of its model if that is a release."""
        if self.start is None:
            self.start = t
        model = exchange.model
        first = self.first_seen.get(model)
        if first is None:
            if not exchange.served or len(self.first_seen) >= self.max_models:
                return None
            first = t if t - self.start >= self.warmup else -math.inf
            self.first_seen[model] = first
            if first > -math.inf:
                self.latest = t
        return first if first > -math.inf else None


@dataclass(slots=True)
class _AdoptState(ShareState):
    first_t: float | None = None


class _Adoption(ShareSignal[_AdoptState]):
    """Shared by both signals: the share of an account's requests, in a window after a
    release, that went to the new model, against the population's median account."""

    window: float
    established_only: bool
    what: str
    state_type = _AdoptState

    def __init__(
        self,
        max_evidence: float,
        min_requests: int = 5,
        prior_weight: float = 5.0,
        max_weight: int = 64,
    ) -> None:
        self.releases = ModelReleases()
        super().__init__(
            PopulationTail(prior=0.1),
            min_requests=min_requests,
            prior_weight=prior_weight,
            max_weight=max_weight,
            no_data="no new model has appeared in the log",
            too_few=f"fewer than {min_requests} requests {self.what}",
        )
        self.max_evidence = max_evidence

    def update(self, state: _AdoptState, exchange: Exchange, t: float) -> None:
        first = self.releases.observe(exchange, t)
        if state.first_t is None:
            state.first_t = t
        latest = self.releases.latest
        if latest is None or t - latest >= self.window:
            return
        if self.established_only and state.first_t >= latest:
            return
        state.n += 1
        if first is not None and t - first < self.window:
            state.hits += 1
        if state.n >= self.population.min_n:
            state.bin = self.population.place(state.bin, state.hits / state.n)

    def missing(self, state: _AdoptState) -> SignalValue:
        return self.no_data if self.releases.latest is None else self.too_few

    def judge(self, key: tuple[int, ...], typical: float, tails: list[float]) -> SignalValue:
        pct, m, _ = key
        typical = max(typical, 0.02)
        evidence = min(
            max(math.log(self.shrink(pct, m, typical) / typical), 0.0), self.max_evidence
        )
        return computed(
            self, pct / 100, round(evidence, 2), self.explain(pct, int(100 * typical + 0.5))
        )

    def explain(self, pct: int, typical_pct: int) -> str:
        raise NotImplementedError


@register
class NewModelShare(_Adoption):
    """Share of requests sent to a model first seen less than 48 h before, against the median.

    Counted over the account's requests while some model was new; the share (to the per
    cent) is shrunk toward the population's median (a prior worth 5 requests against at
    most 64 of the account's) and the evidence is
    ``ln(shrunk / median)`` clipped to [0, 1.2].

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = NewModelShare(); st = sig.new_state(); other = sig.new_state()
    >>> def ex(model): return Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC),
    ...                                account_id="a", ip="192.0.2.1", model=model)
    >>> sig.update(other, ex("frontier-1"), 0.0)
    >>> for i in range(20): sig.update(st, ex("frontier-2"), 86_400.0 + 60 * i)
    >>> sig.evaluate(st, EvalContext(now=90_000.0, account=None, tier="free", exchanges=20)).explanation
    '100 % of requests while a model was new (first seen < 48 h ago) went to it; typical accounts: 10 %'
    """  # noqa: E501

    id: ClassVar[str] = "targeting.new_model_share"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "targeting"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "share of requests to models first seen less than 48 h before"
    window = 48 * HOUR
    established_only = False
    what = "while a new model was out"

    def __init__(self, max_evidence: float = 1.2) -> None:
        super().__init__(max_evidence)

    def explain(self, pct: int, typical_pct: int) -> str:
        return (
            f"{pct} % of requests while a model was new (first seen < 48 h ago) went to it; "
            f"typical accounts: {typical_pct} %"
        )


@register
class EarlySwitch(_Adoption):
    """Share of an established account's requests moved to a new model within 24 h of it.

    Only accounts active before the release count (a new account starting on the new
    model did not *switch*); evidence ``ln(shrunk / median)`` clipped to [0, 0.8].

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = EarlySwitch(); st = sig.new_state()
    >>> def ex(model): return Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC),
    ...                                account_id="a", ip="192.0.2.1", model=model)
    >>> sig.update(st, ex("frontier-1"), 0.0)
    >>> for i in range(20): sig.update(st, ex("frontier-2"), 86_400.0 + 60 * i)
    >>> ctx = EvalContext(now=90_000.0, account=None, tier="free", exchanges=21)
    >>> sig.evaluate(st, ctx).evidence
    0.8
    """

    id: ClassVar[str] = "targeting.early_switch"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "targeting"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "traffic moved to a new model within 24 h of its first appearance"
    window = 24 * HOUR
    established_only = True
    what = "within 24 h of a release from an account active before it"

    def __init__(self, max_evidence: float = 0.8) -> None:
        super().__init__(max_evidence)

    def explain(self, pct: int, typical_pct: int) -> str:
        return (
            f"moved {pct} % of its requests to a new model within 24 h of its first "
            f"appearance; typical established accounts: {typical_pct} %"
        )
