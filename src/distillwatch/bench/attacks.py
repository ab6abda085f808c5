"""Distillation attacks modelled on the public reports.

Prompts are kind B (what distillation pipelines send). Attackers augment rather than resend:
a campaign walks its prompt queue once and, when the queue runs dry, re-wraps problems in a
different template instead of repeating a request verbatim.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from distillwatch.bench.population import (
    Cohort,
    Context,
    Stream,
    country,
    each_account,
    label,
    make_account,
    payment_fingerprint,
    user_message,
    with_system,
)
from distillwatch.bench.sources import Conversation
from distillwatch.bench.world import (
    CODE_TEMPLATES,
    MODELS,
    NEW_MODEL,
    REASONING_TEMPLATES,
    SYSTEM_PROMPTS,
    TASK_TEMPLATES,
    USER_AGENTS,
    pick,
    weighted,
)
from distillwatch.records import Account


class PromptQueue:
    """A campaign's harvest plan: every problem once, then re-wrapped, never resent verbatim.

    Round ``r`` of the pool wraps problem ``i`` in template ``(offset[i] + r) mod k`` of the
    set asked for, so a (problem, template) pair recurs only after ``k`` full rounds, with
    O(pool) memory however long the campaign runs.
    """

    def __init__(self, rng: random.Random, pool: tuple[Conversation, ...]) -> None:
        self.rng = rng
        self.pool = pool
        self.offset = [rng.randrange(1 << 16) for _ in pool]
        self.order: deque[int] = deque()
        self.round = -1

    def next(self, templates: tuple[str, ...]) -> str:
        if not self.order:
            idx = list(range(len(self.pool)))
            self.rng.shuffle(idx)
            self.order.extend(idx)
            self.round += 1
        i = self.order.popleft()
        tpl = templates[(self.offset[i] + self.round) % len(templates)]
        return tpl.format(q=self.pool[i].turns[0])


def _burst_signups(
    rng: random.Random, start: datetime, count: int, spread_h: float
) -> list[datetime]:
    """Accounts opened in a burst some days before the campaign starts."""
    center = start - timedelta(days=rng.uniform(1.5, 9.0))
    return sorted(center + timedelta(hours=rng.uniform(0, spread_h)) for _ in range(count))


def cot_harvest(
    ctx: Context,
    count: int,
    *,
    per_account_per_day: float = 150.0,
    reasoning_share: float = 0.8,
    payment_methods: int = 0,
    signup_spread_h: float = 6.0,
    pivot_share: float = 0.5,
    pivot_within_h: float = 20.0,
) -> Cohort:
    """A hydra cluster harvesting chain-of-thought through rotating residential proxies.

    ``count`` accounts share a few payment methods, were opened in a burst, send kind-B
    problems wrapped to demand step-by-step reasoning, load-balanced across accounts around
    the clock, and move ``pivot_share`` of their traffic to a newly released model within
    ``pivot_within_h`` hours of its release.
    """
    rng = ctx.child_rng("campaign")
    campaign = f"camp_{rng.getrandbits(40):010x}"
    pms = [payment_fingerprint(rng) for _ in range(payment_methods or max(1, count // 6))]
    accounts = []
    for created in _burst_signups(rng, ctx.world.start, count, signup_spread_h):
        cc, _ = country(rng)
        accounts.append(
            make_account(
                rng,
                created_at=created,
                tier=weighted(rng, [("paid", 0.8), ("free", 0.2)]),
                country_code=cc,
                payment=pick(rng, pms),
                verified=False,
            )
        )
    cohort = Cohort(
        accounts=accounts, labels=[label(a, "attack", ctx.name, campaign) for a in accounts]
    )
    rate = per_account_per_day * count
    cohort.streams.append(
        _harvest_stream(ctx, rng, accounts, rate, reasoning_share, pivot_share, pivot_within_h)
    )
    return cohort


def _harvest_stream(
    ctx: Context,
    rng: random.Random,
    accounts: list[Account],
    per_day: float,
    reasoning_share: float,
    pivot_share: float,
    pivot_within_h: float,
) -> Stream:
    w = ctx.world
    queue = PromptQueue(rng, ctx.prompts.tasks)
    ua = pick(rng, USER_AGENTS["sdk"])
    pivot_at = w.release_at + timedelta(hours=rng.uniform(0.5, pivot_within_h))
    mean_gap = 86400.0 / per_day
    turn = rng.randrange(len(accounts))
    t = w.start + timedelta(seconds=rng.uniform(0, mean_gap))
    while t < w.end:
        turn = (turn + 1) % len(accounts)  # load balancing in lockstep
        acct = accounts[turn]
        ip_kind = weighted(rng, [("residential", 0.7), ("residential6", 0.1), ("mobile", 0.2)])
        templates = REASONING_TEMPLATES if rng.random() < reasoning_share else TASK_TEMPLATES
        text = queue.next(templates)
        system = pick(rng, SYSTEM_PROMPTS) if rng.random() < 0.3 else None
        model = MODELS[0]
        if t >= pivot_at and rng.random() < pivot_share:
            model = NEW_MODEL
        params: dict[str, Any] = {
            "temperature": pick(rng, (0.6, 0.7, 1.0)),
            "max_tokens": pick(rng, (4096, 8192, 16384)),
        }
        if rng.random() < 0.15:
            params["n"] = 2
        yield w.exchange(
            rng,
            account_id=acct.account_id,
            ts=t,
            ip=w.network.address(rng, ip_kind),  # a rotating proxy: a new exit per request
            user_agent=ua,
            model=model,
            messages=with_system(system, [user_message(text)]),
            params=params,
            style="mooncake-conv",
        )
        t += timedelta(seconds=w.tokens.gap(rng, mean_gap))


def naive_scraper(ctx: Context, count: int, *, per_day: float = 3000.0) -> Cohort:
    """Single accounts looping over a problem set from one server as fast as they are allowed."""

    def new_account(rng: random.Random, cc: str) -> Account:
        return make_account(
            rng,
            created_at=ctx.world.start - timedelta(days=rng.uniform(0.5, 20)),
            tier=weighted(rng, [("paid", 0.7), ("free", 0.3)]),
            country_code=cc,
        )

    return each_account(
        ctx,
        count,
        "attack",
        new_account,
        lambda rng, acct, offset: _scraper_stream(ctx, rng, acct, per_day),
        campaign=lambda acct: f"camp_solo_{acct.account_id[5:]}",
    )


def _scraper_stream(
    ctx: Context, rng: random.Random, acct: Account, per_day: float
) -> Iterator[Any]:
    w = ctx.world
    queue = PromptQueue(rng, ctx.prompts.tasks + ctx.prompts.coding)
    ip = w.network.address(rng, "datacenter")
    ua = pick(rng, USER_AGENTS["http"])
    templates = (pick(rng, REASONING_TEMPLATES), "{q}", pick(rng, CODE_TEMPLATES))
    params = {"temperature": 0.7, "max_tokens": 4096}
    pause = 86400.0 / per_day
    t = w.start + timedelta(seconds=rng.uniform(0, 3600))
    while t < w.end:
        ex = w.exchange(
            rng,
            account_id=acct.account_id,
            ts=t,
            ip=ip,
            user_agent=ua,
            model=MODELS[0],
            messages=[user_message(queue.next(templates))],
            params=params,
            style="mooncake-conv",
        )
        yield ex
        # a sequential loop: the next request leaves when this answer is in, plus a sleep
        t += timedelta(seconds=(ex.latency_ms or 0) / 1000 + rng.uniform(0.5, 1.5) * pause)
