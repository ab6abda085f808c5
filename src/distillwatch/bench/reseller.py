"""Resellers: one account fronting real end users' chat while harvesting on the side.

Basis: the public reports describe proxy services that resell API access and mix
distillation traffic into their customers' ordinary requests, so the extraction hides in a
legitimate-looking volume. From the provider's side it is one established, paying account
on a few servers whose traffic is mostly real people chatting.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from distillwatch.bench.attacks import families, request
from distillwatch.bench.population import (
    Cohort,
    Context,
    Rate,
    Share,
    Size,
    Stream,
    each_account,
    make_account,
)
from distillwatch.bench.sessions import sessions
from distillwatch.bench.tactics import Pacer, PromptPlan, Timing
from distillwatch.bench.world import MODELS, NEW_MODEL, USER_AGENTS, diurnal_next, pick, weighted
from distillwatch.records import Account


def reseller(
    ctx: Context,
    count: int,
    *,
    end_users: Size = 60,
    sessions_per_user_per_day: Rate = 1.5,
    extraction_per_day: Rate = 500.0,
    reasoning_share: Share = 0.8,
    rubric_share: Share = 0.05,
    rewrite_share: Share = 0.0,
    variation: Share = 0.5,
    timing: Timing = "steady",
) -> Cohort:
    """``count`` reseller accounts, each relaying ``end_users`` people plus its own harvest.

    The end users' chat (kind A, multi-turn, each person's own day) goes out through the
    reseller's servers and client; on top, ``extraction_per_day`` kind-B requests in the
    hydra's template families, around the clock (``timing``). Each account is its own
    campaign.
    """

    def new_account(rng: random.Random, cc: str) -> Account:
        return make_account(
            rng,
            created_at=ctx.world.start - timedelta(days=rng.uniform(20, 400)),
            tier=weighted(rng, [("paid", 0.7), ("enterprise", 0.3)]),
            country_code=cc,
            email_domain=f"app{rng.getrandbits(24):06x}.io",
            verified=rng.random() < 0.5,
        )

    def stream(rng: random.Random, acct: Account, offset: int) -> Stream:
        w = ctx.world
        servers = [w.network.address(rng, "datacenter") for _ in range(rng.randint(1, 3))]
        ua = pick(rng, USER_AGENTS["sdk"])  # its relay is built on an SDK
        users: list[Stream] = []
        for u in range(end_users):
            urng = random.Random(f"{w.seed}/{ctx.name}/{acct.account_id}/{u}")
            per_day = sessions_per_user_per_day * urng.lognormvariate(0, 0.6)
            users.append(
                sessions(
                    ctx,
                    urng,
                    acct.account_id,
                    _starts(urng, per_day, offset),
                    _server(urng, servers),
                    ua=ua,
                    max_turns=6,
                )
            )
        plan = PromptPlan(
            ctx,
            rng,
            ctx.prompts.tasks,
            families(reasoning_share, rubric_share, rewrite_share),
            camouflage=0.0,
            variation=variation,
        )
        pacer = Pacer(w, rng, extraction_per_day, timing, utc_offset_h=offset)
        harvest = _harvest(ctx, rng, acct, plan, pacer, servers, ua)
        return heapq.merge(*users, harvest, key=lambda e: (e.ts, e.id))

    return each_account(
        ctx,
        count,
        "attack",
        new_account,
        stream,
        campaign=lambda acct: f"camp_resale_{acct.account_id[5:]}",
    )


def _server(rng: random.Random, servers: list[str]) -> Callable[[datetime], str]:
    return lambda _: pick(rng, servers)


def _starts(rng: random.Random, per_day: float, offset: int) -> Callable[[datetime], datetime]:
    return lambda t: diurnal_next(rng, t, per_day, offset)


def _harvest(
    ctx: Context,
    rng: random.Random,
    acct: Account,
    plan: PromptPlan,
    pacer: Pacer,
    servers: list[str],
    ua: str,
) -> Stream:
    w = ctx.world
    t = pacer.next(rng, w.start)
    while t < w.end:
        model = NEW_MODEL if NEW_MODEL in w.models(t) and rng.random() < 0.3 else MODELS[0]
        ip = pick(rng, servers)
        yield request(w, rng, plan, account_id=acct.account_id, t=t, ip=ip, ua=ua, model=model)
        t = pacer.next(rng, t)
