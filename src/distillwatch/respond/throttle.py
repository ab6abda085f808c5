"""Token-weighted rate limits for throttled accounts and campaigns (the ``limits`` library).

A throttled request is admitted while its account (and its campaign, when attribution
names one) has both request and token budget left in the current window; once the answer
is known, the tokens it used are charged. Budgets live in memory (one gateway) or Redis
(several replicas share them): ``storage: redis://host:6379/0``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillwatch.errors import DistillwatchError
from distillwatch.respond.errors import Refusal, rate_limited


class ThrottleError(DistillwatchError):
    """The rate-limit storage failed (Redis unreachable, ...)."""


_STRATEGIES: dict[str, type[RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window": SlidingWindowCounterRateLimiter,
}


def _check_limit(value: str | None) -> str | None:
    if value is not None:
        try:
            parse(value)
        except ValueError:
            raise ValueError(
                f"not a rate limit: {value!r} (write e.g. '60/minute' or '100000/hour')"
            ) from None
    return value


class TierLimits(BaseModel):
    """Per-tier replacements for the account limits (unset: the top-level value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: str | None = None
    tokens: str | None = None

    _valid = field_validator("requests", "tokens")(_check_limit)


class ThrottleSettings(BaseModel):
    """Limits applied to accounts the policy throttles (``limits`` notation: ``"60/minute"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    storage: str = Field(
        "memory://", description="memory:// (one process) or redis://host:port/db (replicas)"
    )
    strategy: Literal["fixed-window", "moving-window", "sliding-window"] = "sliding-window"
    requests: str = Field("20/minute", description="requests per account")
    tokens: str = Field("20000/minute", description="prompt+completion tokens per account")
    campaign_requests: str | None = Field(None, description="requests per campaign")
    campaign_tokens: str | None = Field(None, description="tokens per campaign")
    tiers: dict[str, TierLimits] = Field(
        default_factory=dict, description="per account tier: requests and/or tokens"
    )
    key_prefix: str = Field("distillwatch", min_length=1)

    _valid = field_validator("requests", "tokens", "campaign_requests", "campaign_tokens")(
        _check_limit
    )

    @field_validator("storage")
    @classmethod
    def _valid_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError(f"storage must be memory:// or redis://host:port/db, got {value!r}")
        return value


def open_storage(url: str, key_prefix: str) -> Storage:
    """An async ``limits`` storage for ``memory://`` or ``redis://`` (redis-py client)."""
    try:
        if url.startswith("memory://"):
            storage = storage_from_string("async+" + url)
        else:
            storage = storage_from_string(
                "async+" + url,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
            )
    except ConfigurationError as e:
        raise ThrottleError(f"cannot open rate-limit storage {url!r}: {e}") from e
    if not isinstance(storage, Storage):  # pragma: no cover - the async+ scheme guarantees it
        raise ThrottleError(f"not an async rate-limit storage: {url!r}")
    return storage


class Throttle:
    """Admit or refuse throttled requests; charge the tokens they used.

    ``campaign_of`` (from campaign attribution, when it is wired in) names an account's
    campaign so that the accounts of one campaign share the campaign budget.
    """

    def __init__(
        self,
        settings: ThrottleSettings,
        campaign_of: Callable[[str], str | None] | None = None,
        storage: Storage | None = None,
        tier_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.campaign_of = campaign_of
        self.tier_of = tier_of
        self.storage = storage or open_storage(settings.storage, settings.key_prefix)
        self.limiter = _STRATEGIES[settings.strategy](self.storage)
        self.requests = parse(settings.requests)
        self.tokens = parse(settings.tokens)
        self.campaign_requests = _maybe(settings.campaign_requests)
        self.campaign_tokens = _maybe(settings.campaign_tokens)
        self.tiers = {
            tier: (
                parse(t.requests) if t.requests else self.requests,
                parse(t.tokens) if t.tokens else self.tokens,
            )
            for tier, t in settings.tiers.items()
        }

    def _scopes(
        self, account_id: str
    ) -> list[tuple[RateLimitItem | None, RateLimitItem | None, str]]:
        """(request limit, token limit, key) for the account and, if any, its campaign."""
        tier = self.tier_of(account_id) if self.tier_of else None
        requests, tokens = self.tiers.get(tier or "", (self.requests, self.tokens))
        scopes: list[tuple[RateLimitItem | None, RateLimitItem | None, str]] = [
            (requests, tokens, f"account:{account_id}")
        ]
        campaign = self.campaign_of(account_id) if self.campaign_of else None
        if campaign is not None and (self.campaign_requests or self.campaign_tokens):
            scopes.append((self.campaign_requests, self.campaign_tokens, f"campaign:{campaign}"))
        return scopes

    async def admit(self, account_id: str) -> Refusal | None:
        """None to let the request through (one request charged), else a 429 refusal."""
        try:
            for req_limit, tok_limit, key in self._scopes(account_id):
                if tok_limit is not None and not await self.limiter.test(tok_limit, "tok", key):
                    return await self._refusal(tok_limit, "tok", key, "tokens")
                if req_limit is not None and not await self.limiter.hit(req_limit, "req", key):
                    return await self._refusal(req_limit, "req", key, "requests")
        except StorageError as e:
            raise ThrottleError(f"rate-limit storage failed: {e}") from e
        return None

    async def charge(self, account_id: str, tokens: int) -> None:
        """Charge ``tokens`` to the account's (and campaign's) token budget, up to what is left."""
        if tokens <= 0:
            return
        try:
            for _, tok_limit, key in self._scopes(account_id):
                if tok_limit is None:
                    continue
                stats = await self.limiter.get_window_stats(tok_limit, "tok", key)
                cost = min(tokens, stats.remaining)
                if cost > 0:
                    await self.limiter.hit(tok_limit, "tok", key, cost=cost)
        except StorageError as e:
            raise ThrottleError(f"rate-limit storage failed: {e}") from e

    async def close(self) -> None:
        """Close the Redis connections, if any (``limits`` storages have no close of their own)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()

    async def _refusal(self, item: RateLimitItem, kind: str, key: str, what: str) -> Refusal:
        stats = await self.limiter.get_window_stats(item, kind, key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        scope = "campaign" if key.startswith("campaign") else "account"
        return rate_limited(
            f"Rate limit reached for this {scope}: {item.amount} {what} per "
            f"{_per(item)}. Retry after {retry} s.",
            retry,
        )


def _maybe(text: str | None) -> RateLimitItem | None:
    return parse(text) if text is not None else None


def _per(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
