"""Distillation attacks modelled on the public reports: hydra clusters, low-and-slow, scrapers.

Prompts are kind B (what distillation pipelines send), in template families that demand
reasoning, rubric grading ("act as a reward model") or "safe" rewrites; attackers augment
rather than resend (``tactics.PromptQueue``). Every evasion knob (accounts, per-account rate,
camouflage, variation, IP strategy, timing and jitter, sign-up spread) is a keyword argument
of the builder, so a scenario file can turn it. Capability sweeps are in ``sweep``, resellers
in ``reseller``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any, Literal

from distillwatch.bench.population import (
    Cohort,
    Context,
    Hours,
    Jitter,
    Rate,
    Share,
    Size,
    Stream,
    each_account,
    label,
    make_account,
    user_message,
)
from distillwatch.bench.tactics import (
    Addresses,
    IpStrategy,
    Pacer,
    PromptPlan,
    PromptQueue,
    Timing,
    campaign_accounts,
)
from distillwatch.bench.world import (
    CODE_TEMPLATES,
    COUNTRIES,
    MODELS,
    NEW_MODEL,
    REASONING_TEMPLATES,
    REWRITE_TEMPLATES,
    RUBRIC_TEMPLATES,
    TASK_TEMPLATES,
    USER_AGENTS,
    World,
    pick,
    weighted,
)
from distillwatch.records import Account, Exchange


def families(
    reasoning: float, rubric: float, rewrite: float
) -> list[tuple[tuple[str, ...], float]]:
    """Template families by share; what is left over goes to plain task templates."""
    rest = max(0.0, 1.0 - reasoning - rubric - rewrite)
    return [
        (REASONING_TEMPLATES, reasoning),
        (RUBRIC_TEMPLATES, rubric),
        (REWRITE_TEMPLATES, rewrite),
        (TASK_TEMPLATES, rest),
    ]


def harvest_params(rng: random.Random, n_share: float = 0.15) -> dict[str, Any]:
    """Sampling parameters of a harvesting request (values developers use too).

    ``n_share`` of the requests ask for two samples at once.
    """
    params: dict[str, Any] = {
        "temperature": pick(rng, (0.6, 0.7, 1.0)),
        "max_tokens": pick(rng, (4096, 8192, 16384)),
    }
    if rng.random() < n_share:
        params["n"] = 2
    return params


def camouflage_params(rng: random.Random) -> dict[str, Any]:
    """Parameters of a camouflage request, as a chat app sends them."""
    return {"stream": True, "temperature": 0.7} if rng.random() < 0.5 else {"stream": True}


def request(
    w: World,
    rng: random.Random,
    plan: PromptPlan,
    *,
    account_id: str,
    t: datetime,
    ip: str,
    ua: str,
    model: str,
    n_share: float = 0.15,
) -> Exchange:
    """One request of a campaign: a harvest (reasoning-length answer) or camouflage."""
    messages, camouflage = plan.next(rng)
    return w.exchange(
        rng,
        account_id=account_id,
        ts=t,
        ip=ip,
        user_agent=ua,
        model=MODELS[1] if camouflage and rng.random() < 0.5 else model,
        messages=messages,
        params=camouflage_params(rng) if camouflage else harvest_params(rng, n_share),
        style="azure-conv" if camouflage else "mooncake-conv",
    )


def cot_harvest(
    ctx: Context,
    count: int,
    *,
    per_account_per_day: Rate = 26.0,
    reasoning_share: Share = 0.7,
    rubric_share: Share = 0.1,
    rewrite_share: Share = 0.05,
    camouflage: Share = 0.0,
    variation: Share = 0.5,
    accounts_per_card: Rate = 6.0,
    signup_spread_h: Hours = 6.0,
    ip_strategy: IpStrategy = "rotating-residential",
    timing: Timing = "steady",
    jitter: Jitter = 0.0,
    balance: Literal["round-robin", "random", "batch"] = "round-robin",
    batch_size: Size = 24,
    pivot_share: Share = 0.5,
    pivot_within_h: Hours = 20.0,
) -> Cohort:
    """A hydra cluster harvesting chain-of-thought through residential proxies.

    Basis: the public reports of 2025-26 on distillation of frontier APIs: networks of
    thousands of fraudulent accounts, each light (about 26 exchanges a day), paid with a few
    shared payment methods (``accounts_per_card``), opened in bursts (``signup_spread_h``),
    sending through rotating residential proxies (``ip_strategy``), load-balanced by one
    scheduler (``balance``) around the clock (``timing``); ``batch`` dispatches
    ``batch_size`` requests at once, one per account (a worker pool: its accounts send
    within the same second, batch after batch). Requests demand step-by-step
    reasoning, rubric grading or "safe" rewrites (``*_share``); ``camouflage`` of them are
    ordinary chat prompts, ``variation`` how widely requests are re-worded. ``pivot_share``
    of the traffic moves to a newly released model within ``pivot_within_h`` hours.
    """
    rng = ctx.child_rng("campaign")
    campaign = f"camp_{rng.getrandbits(40):010x}"
    accounts = campaign_accounts(
        ctx, rng, count, signup_spread_h=signup_spread_h, accounts_per_card=accounts_per_card
    )
    cohort = Cohort(
        accounts=accounts, labels=[label(a, "attack", ctx.name, campaign) for a in accounts]
    )
    plan = PromptPlan(
        ctx,
        rng,
        ctx.prompts.tasks,
        families(reasoning_share, rubric_share, rewrite_share),
        camouflage=camouflage,
        variation=variation,
    )
    batch = min(batch_size, count) if balance == "batch" else 1
    pacer = Pacer(
        ctx.world,
        rng,
        per_account_per_day * count / batch,
        timing,
        jitter=jitter,
        utc_offset_h=pick(rng, COUNTRIES)[1],
    )
    cohort.streams.append(
        _hydra_stream(
            ctx,
            rng,
            accounts,
            plan,
            pacer,
            ip_strategy,
            (balance, batch),
            (pivot_share, pivot_within_h),
        )
    )
    return cohort


def _hydra_stream(
    ctx: Context,
    rng: random.Random,
    accounts: list[Account],
    plan: PromptPlan,
    pacer: Pacer,
    ip_strategy: IpStrategy,
    dispatch: tuple[str, int],
    pivot: tuple[float, float],
) -> Stream:
    w = ctx.world
    pivot_share, pivot_within_h = pivot
    where = [Addresses(w, rng, ip_strategy) for _ in accounts]
    shared_ua = pick(rng, USER_AGENTS["sdk"])
    uas = [shared_ua if rng.random() < 0.7 else pick(rng, USER_AGENTS["sdk"]) for _ in accounts]
    pivot_at = w.release_at + timedelta(hours=rng.uniform(0.5, max(0.5, pivot_within_h)))
    balance, batch = dispatch
    turn = rng.randrange(len(accounts))
    t = pacer.next(rng, w.start)
    while t < w.end:
        # one scheduler load-balances the accounts (in lockstep, picking at random, or a
        # batch at once: each request leaves within a second of the batch's start)
        if balance == "batch":
            turns = rng.sample(range(len(accounts)), batch)
            times = sorted(t + timedelta(seconds=rng.uniform(0.0, 0.6)) for _ in turns)
        else:
            turn = (
                (turn + 1) % len(accounts)
                if balance == "round-robin"
                else rng.randrange(len(accounts))
            )
            turns, times = [turn], [t]
        for turn, at in zip(turns, times, strict=True):
            if at >= w.end:
                return
            model = NEW_MODEL if at >= pivot_at and rng.random() < pivot_share else MODELS[0]
            yield request(
                w,
                rng,
                plan,
                account_id=accounts[turn].account_id,
                t=at,
                ip=where[turn].at(rng, at),
                ua=uas[turn],
                model=model,
            )
        t = pacer.next(rng, t)


def low_and_slow(
    ctx: Context,
    count: int,
    *,
    per_account_per_day: Rate = 30.0,
    rate_limit_per_hour: Rate = 20.0,
    reasoning_share: Share = 0.7,
    rubric_share: Share = 0.05,
    rewrite_share: Share = 0.05,
    camouflage: Share = 0.3,
    variation: Share = 0.9,
    accounts_per_card: Rate = 1.0,
    signup_spread_h: Hours = 1080.0,
    ip_strategy: IpStrategy = "sticky-residential",
    timing: Timing = "diurnal",
    jitter: Jitter = 0.5,
    pivot_share: Share = 0.3,
) -> Cohort:
    """Low-and-slow harvesting: accounts that each look like one busy person.

    Basis: the evasions the public reports anticipate once per-account rate limits and
    volume alarms bite: every account stays under a rate limit it knows
    (``rate_limit_per_hour``) at a human volume, follows its declared country's day
    (``timing: diurnal``), keeps a sticky residential address for hours, pays with its own
    card, was opened weeks apart (``signup_spread_h``), mixes ``camouflage`` ordinary chat
    prompts in and re-words requests widely (``variation``). The accounts share one harvest
    plan, so no problem is asked twice across the campaign.
    """
    rng = ctx.child_rng("campaign")
    campaign = f"camp_{rng.getrandbits(40):010x}"
    accounts = campaign_accounts(
        ctx,
        rng,
        count,
        signup_spread_h=signup_spread_h,
        accounts_per_card=accounts_per_card,
        lead_days=(1.0, 6.0),
    )
    plan = PromptPlan(
        ctx,
        rng,
        ctx.prompts.tasks,
        families(reasoning_share, rubric_share, rewrite_share),
        camouflage=camouflage,
        variation=variation,
    )
    offsets = dict(COUNTRIES)
    cohort = Cohort(accounts, [label(a, "attack", ctx.name, campaign) for a in accounts])
    for i, acct in enumerate(accounts):
        arng = ctx.child_rng(i)
        pacer = Pacer(
            ctx.world,
            arng,
            per_account_per_day * arng.lognormvariate(0, 0.3),
            timing,
            jitter=jitter,
            utc_offset_h=offsets.get(acct.country or "", 0),
            min_gap_s=3600.0 / rate_limit_per_hour,
        )
        cohort.streams.append(_slow_stream(ctx, arng, acct, plan, pacer, ip_strategy, pivot_share))
    return cohort


def _slow_stream(
    ctx: Context,
    rng: random.Random,
    acct: Account,
    plan: PromptPlan,
    pacer: Pacer,
    ip_strategy: IpStrategy,
    pivot_share: float,
) -> Stream:
    w = ctx.world
    where = Addresses(w, rng, ip_strategy)
    ua = pick(rng, USER_AGENTS["sdk"])  # camouflage streams like a chat front-end
    adopter = pivot_share * rng.uniform(0.5, 1.0)
    t = pacer.next(rng, w.start)
    while t < w.end:
        model = NEW_MODEL if NEW_MODEL in w.models(t) and rng.random() < adopter else MODELS[0]
        ip = where.at(rng, t)
        yield request(
            w, rng, plan, account_id=acct.account_id, t=t, ip=ip, ua=ua, model=model, n_share=0.0
        )
        t = pacer.next(rng, t)


def naive_scraper(
    ctx: Context, count: int, *, per_day: Rate = 3000.0, variation: Share = 0.2
) -> Cohort:
    """Single accounts looping over a problem set from one server as fast as they are allowed.

    Basis: the simplest extraction script: one account, one datacenter address, one HTTP
    client, a sequential loop over benchmark problems with three fixed wrappers, a little
    re-wording (``variation``) once the set is done, no camouflage. Each account is its own
    campaign.
    """

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
        lambda rng, acct, offset: _scraper_stream(ctx, rng, acct, per_day, variation),
        campaign=lambda acct: f"camp_solo_{acct.account_id[5:]}",
    )


def _scraper_stream(
    ctx: Context, rng: random.Random, acct: Account, per_day: float, variation: float
) -> Stream:
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
            messages=[user_message(queue.next(templates, variation))],
            params=params,
            style="mooncake-conv",
        )
        yield ex
        # a sequential loop: the next request leaves when this answer is in, plus a sleep
        t += timedelta(seconds=(ex.latency_ms or 0) / 1000 + rng.uniform(0.5, 1.5) * pause)
