"""Token-weighted throttling, in memory and in the real Redis shared by replicas."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable

import pytest
from pydantic import ValidationError

from distillwatch.respond import Throttle, ThrottleSettings
from distillwatch.respond.throttle import ThrottleError

REDIS_URL = os.environ.get("DISTILLWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def redis_settings(**limits: str | None) -> ThrottleSettings:
    """Settings on the test Redis under a fresh key prefix; skip (fail in CI) if it is down."""
    try:
        import redis
    except ImportError:
        unavailable("the redis client is not installed (pip install 'distillwatch[gateway]')")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as e:
        unavailable(f"Redis unreachable at {REDIS_URL}: {e}")
    return ThrottleSettings(storage=REDIS_URL, key_prefix=f"dwtest-{uuid.uuid4().hex}", **limits)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redis is mandatory in CI: {reason}")
    pytest.skip(reason)


def test_requests_limit_per_account_in_memory() -> None:
    async def go() -> None:
        t = Throttle(ThrottleSettings(requests="2/minute"))
        assert await t.admit("a") is None
        assert await t.admit("a") is None
        refusal = await t.admit("a")
        assert refusal is not None and refusal.status == 429
        assert "2 requests per minute" in refusal.message
        assert await t.admit("b") is None

    run(go)


def test_tokens_are_charged_up_to_what_is_left() -> None:
    async def go() -> None:
        t = Throttle(ThrottleSettings(tokens="100/minute"))
        assert await t.admit("a") is None
        await t.charge("a", 5000)  # more than the budget: the budget is exhausted, not skipped
        refusal = await t.admit("a")
        assert refusal is not None and "100 tokens per minute" in refusal.message

    run(go)


def test_campaign_budget_is_shared_by_its_accounts() -> None:
    campaigns = {"a1": "camp-1", "a2": "camp-1", "solo": None}

    async def go() -> None:
        t = Throttle(
            ThrottleSettings(requests="100/minute", campaign_requests="3/minute"),
            campaign_of=campaigns.get,
        )
        results = [await t.admit(a) for a in ("a1", "a2", "a1", "a2")]
        assert [r is None for r in results] == [True, True, True, False]
        assert results[3] is not None and "campaign" in results[3].message
        assert all([await t.admit("solo") is None for _ in range(5)])

    run(go)


def test_bad_limits_are_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="not a rate limit"):
        ThrottleSettings(requests="twenty a minute")
    with pytest.raises(ValidationError, match="memory:// or redis://"):
        ThrottleSettings(storage="memcached://x")


def test_replicas_share_budgets_through_redis() -> None:
    settings = redis_settings(requests="3/minute", tokens="50/minute")

    async def go() -> None:
        one, two = Throttle(settings), Throttle(settings)  # two gateway replicas
        assert await one.admit("acct") is None
        assert await two.admit("acct") is None
        assert await one.admit("acct") is None
        refusal = await two.admit("acct")
        assert refusal is not None and refusal.status == 429
        assert await two.admit("other") is None
        await one.charge("other", 80)
        refusal = await two.admit("other")
        assert refusal is not None and "tokens" in refusal.message
        await one.close()
        await two.close()

    run(go)


def test_unreachable_redis_is_a_throttle_error() -> None:
    settings = ThrottleSettings(storage="redis://127.0.0.1:1/0")

    async def go() -> None:
        throttle = Throttle(settings)
        with pytest.raises(ThrottleError, match="rate-limit storage failed"):
            await throttle.admit("a")
        await throttle.close()

    run(go)


def test_tiers_get_their_own_limits() -> None:
    tiers = {"acct-ent": "enterprise", "acct-free": "free"}.get

    async def go() -> None:
        t = Throttle(
            ThrottleSettings(requests="1/minute", tiers={"enterprise": {"requests": "3/minute"}}),
            tier_of=tiers,
        )
        assert [await t.admit("acct-ent") is None for _ in range(4)] == [True, True, True, False]
        assert [await t.admit("acct-free") is None for _ in range(2)] == [True, False]

    run(go)
