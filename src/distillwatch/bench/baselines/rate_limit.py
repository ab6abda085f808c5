"""The status quo: per-account rate limits by tier, as API gateways enforce them today.

Each account gets a requests-per-minute and a requests-per-day limit by its tier
(``DEFAULT_LIMITS``, configurable). The limiter is the exact *moving-window log* of the
``limits`` library (its ``MovingWindowRateLimiter``): a request at time *t* is admitted when
fewer than ``limit`` admitted requests fall in ``(t - window, t]`` for every window, and is then
recorded in all of them; a request over any limit is the one that *would have been
rate-limited* (HTTP 429) and is recorded in none, so a client hammering a full window does not
extend its own ban, and each window's log holds at most ``limit`` timestamps (bounded memory).

The account is flagged while its latest request is over a limit; ``run_baseline`` records the
first such request as the moment of action. The score is the account's peak utilisation so far:
the highest ``(admitted in window + 1) / limit`` over its requests and both windows, clipped to
[0, 1] (1 once a request went over a limit), so the final score ranks accounts by how close
they ever came to their limits.

>>> from datetime import datetime, timedelta, UTC
>>> from distillwatch.records import Exchange
>>> t = datetime(2026, 3, 1, tzinfo=UTC)
>>> rl = RateLimitBaseline()
>>> scores = [rl.observe(Exchange(id=f"x{i}", ts=t + timedelta(seconds=i), account_id="a",
...                               ip="192.0.2.1", model="m")) for i in range(21)]
>>> scores[9], rl.flagged("a")
(0.5, True)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from distillwatch.bench.baselines.driver import Observation
from distillwatch.errors import ConfigError
from distillwatch.records import Account, Exchange

DEFAULT_TIER = "free"


@dataclass(frozen=True, slots=True)
class Limit:
    """Requests per minute and per day for one tier."""

    per_minute: int
    per_day: int

    def windows(self) -> tuple[tuple[float, int, str], ...]:
        return ((60.0, self.per_minute, "minute"), (86_400.0, self.per_day, "day"))


DEFAULT_LIMITS: dict[str, Limit] = {
    "free": Limit(per_minute=20, per_day=300),
    "paid": Limit(per_minute=60, per_day=5_000),
    "research": Limit(per_minute=300, per_day=50_000),
    "enterprise": Limit(per_minute=1_000, per_day=200_000),
}
"""Typical published tiers of LLM APIs (order of magnitude); unknown tiers get ``free``."""


class _State:
    __slots__ = (
        "first", "limit", "logs", "over", "peak", "rejected", "requests", "score", "tier", "windows"
    )  # fmt: skip

    def __init__(self, tier: str, limit: Limit) -> None:
        self.tier = tier
        self.limit = limit
        self.windows = limit.windows()
        self.logs: tuple[deque[float], ...] = tuple(deque() for _ in self.windows)
        self.requests = 0
        self.rejected = 0
        self.over = False
        self.score = 0.0
        self.peak = 0.0
        self.first: str | None = None


class RateLimitBaseline:
    """Per-account moving-window limits by tier; flagged while a request is over a limit."""

    name = "rate-limit"

    def __init__(
        self,
        accounts: Mapping[str, Account] | None = None,
        limits: Mapping[str, Limit] | None = None,
    ) -> None:
        self._limits = dict(DEFAULT_LIMITS if limits is None else limits)
        if DEFAULT_TIER not in self._limits:
            raise ConfigError(f"rate limits need a `{DEFAULT_TIER}` tier (the default)")
        for tier, lim in self._limits.items():
            if lim.per_minute < 1 or lim.per_day < 1:
                raise ConfigError(f"tier {tier!r}: limits must be at least 1", key=tier)
        self._accounts: Mapping[str, Account] = accounts or {}
        self._state: dict[str, _State] = {}

    def calibrate(self, benign: Iterable[Exchange]) -> None:
        """Nothing to fit: the limits are the provider's published ones."""

    def _get(self, account_id: str) -> _State:
        st = self._state.get(account_id)
        if st is None:
            acct = self._accounts.get(account_id)
            tier = (acct.tier if acct is not None else None) or DEFAULT_TIER
            limit = self._limits.get(tier)
            if limit is None:
                tier, limit = f"{tier} (unknown, as {DEFAULT_TIER})", self._limits[DEFAULT_TIER]
            st = self._state[account_id] = _State(tier, limit)
        return st

    def observe(self, e: Exchange) -> float:
        st = self._get(e.account_id)
        t = e.ts.timestamp()
        st.requests += 1
        util = 0.0
        over: str | None = None
        for log, (width, limit, unit) in zip(st.logs, st.windows, strict=True):
            while log and log[0] <= t - width:
                log.popleft()
            util = max(util, (len(log) + 1) / limit)
            if len(log) >= limit and over is None:
                over = f"request {len(log) + 1} within a {unit} > {limit}/{unit}"
        st.over = over is not None
        if over is None:
            for log in st.logs:
                log.append(t)
        else:
            st.rejected += 1
            if st.first is None:
                st.first = f"{over} at {e.ts.isoformat()}"
        st.peak = max(st.peak, util)
        st.score = min(1.0, st.peak)
        return st.score

    def observe_batch(self, batch: Sequence[Exchange]) -> list[Observation]:
        out: list[Observation] = []
        for e in batch:
            score = self.observe(e)
            out.append(Observation(score, self._state[e.account_id].over))
        return out

    def flagged(self, account_id: str) -> bool:
        st = self._state.get(account_id)
        return st is not None and st.over

    def reasons(self, account_id: str) -> list[str]:
        st = self._state.get(account_id)
        if st is None:
            return []
        lim = st.limit
        if st.rejected:
            return [
                f"rate limit: {st.rejected} of {st.requests} requests over the {st.tier} tier's "
                f"{lim.per_minute}/minute, {lim.per_day}/day limits (first: {st.first})"
            ]
        return [
            f"rate limit: never over the {st.tier} tier's {lim.per_minute}/minute, "
            f"{lim.per_day}/day limits (peak use {st.peak:.0%})"
        ]
