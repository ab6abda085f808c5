"""Hard negatives: legitimate accounts that share what detectors look for in attacks.

* ``nat_group``: a class or an office behind one address (NAT), signed up the same day,
  asking similar questions at the same hours — what a hydra cluster looks like from afar;
* ``vpn_user``: people whose address changes every session to a datacenter VPN exit —
  what address rotation looks like;
* ``researcher``: systematic, eval-like prompting that demands reasoning and grades answers
  (LLM-as-judge), trying a new model the day it ships — what a chain-of-thought harvest
  looks like.

Prompts are kind A, except a class's maths homework (grade-school problems, as GSM8K is).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from distillwatch.bench.population import (
    Cohort,
    Context,
    Days,
    Hours,
    Rate,
    Share,
    Size,
    Stream,
    country,
    customer,
    each_account,
    label,
    make_account,
    payment_fingerprint,
    user_message,
)
from distillwatch.bench.sessions import choose_model, conversation, sessions
from distillwatch.bench.sources import Conversation
from distillwatch.bench.world import (
    CONSUMER_DOMAINS,
    MODELS,
    NEW_MODEL,
    REASONING_TEMPLATES,
    RUBRIC_TEMPLATES,
    chat_client,
    diurnal_next,
    pick,
    script_client,
    variants,
    vary,
    weighted,
)
from distillwatch.records import Account

_ORG_WORDS = ("lincoln", "riverside", "northgate", "oakwood", "harbor", "summit", "meridian")


@dataclass
class _Group:
    nat_ip: str
    offset: int  # UTC offset of the group's place
    homework: list[Conversation]
    class_hour: int  # local hour the group's shared slot starts
    hours: float  # how long the slot lasts
    reasoning: bool  # whether the homework asks for worked solutions


def nat_group(
    ctx: Context,
    count: int,
    *,
    group_size: Size = 30,
    topic: Literal["chat", "code", "math"] = "math",
    homework: Size = 8,
    class_hours: Hours = 1.5,
    sessions_per_day: Rate = 1.0,
    shared_payment: bool = False,
    address: Literal["residential", "datacenter"] = "residential",
    signup_days_ago: Days = 20.0,
) -> Cohort:
    """Classes or offices: ``group_size`` accounts behind ONE address, acting together.

    Basis: carrier-grade and school/office NAT put many real users on one IP; a class signs
    up on the same day (one org, one email domain, a shared card in an office:
    ``shared_payment``) and works on the same homework set in the same hour, each student
    in their own words. Outside the shared slot members use the API like ordinary people,
    from the shared address in working hours and from home otherwise. ``topic`` picks the
    homework: ``math`` (grade-school problems with worked solutions), ``code`` or ``chat``.
    """
    groups = max(1, math.ceil(count / group_size))
    cohort = Cohort()
    for g in range(groups):
        members = count // groups + (1 if g < count % groups else 0)
        _one_group(
            ctx,
            cohort,
            g,
            members,
            topic,
            homework,
            class_hours,
            sessions_per_day,
            shared_payment,
            address,
            signup_days_ago,
        )
    return cohort


def _one_group(
    ctx: Context,
    cohort: Cohort,
    g: int,
    members: int,
    topic: str,
    homework: int,
    class_hours: float,
    per_day: float,
    shared_payment: bool,
    address: str,
    signup_days_ago: float,
) -> None:
    w = ctx.world
    rng = ctx.child_rng(f"group{g}")
    pool = {"math": ctx.prompts.math, "code": ctx.prompts.code, "chat": ctx.prompts.hard}[topic]
    cc, offset = country(rng)
    group = _Group(
        nat_ip=w.network.address(rng, address),
        offset=offset,
        homework=rng.sample(list(pool), min(homework, len(pool))),
        class_hour=rng.randint(8, 15),
        hours=class_hours,
        reasoning=topic == "math",
    )
    org = f"org_{rng.getrandbits(32):08x}"
    domain = f"{pick(rng, _ORG_WORDS)}{rng.getrandbits(16):04x}.{pick(rng, ('edu', 'org', 'com'))}"
    card = payment_fingerprint(rng) if shared_payment else None
    day = (w.start - timedelta(days=signup_days_ago)).replace(hour=0, minute=0, second=0)
    tier = weighted(rng, [("free", 0.6), ("paid", 0.4)])
    for i in range(members):
        mrng = ctx.child_rng(f"group{g}/{i}")
        acct = make_account(
            mrng,
            created_at=day + timedelta(hours=group.class_hour - offset + mrng.uniform(0, 3)),
            tier=tier,
            country_code=cc,
            email_domain=domain,
            payment=card,
            org_id=org,
        )
        cohort.accounts.append(acct)
        cohort.labels.append(label(acct, "legit", ctx.name))
        cohort.streams.append(_member_stream(ctx, mrng, acct, group, per_day))


def _member_stream(
    ctx: Context, rng: random.Random, acct: Account, group: _Group, per_day: float
) -> Stream:
    w = ctx.world
    home = w.network.address(rng, "residential")
    ua = chat_client(rng)
    offset = group.offset

    def where(t: datetime) -> str:
        return group.nat_ip if 8 <= (t.hour + offset) % 24 < 18 else home

    own = sessions(
        ctx,
        rng,
        acct.account_id,
        lambda t: diurnal_next(rng, t, per_day, offset),
        where,
        ua=ua,
        max_turns=4,
    )
    slots = _class_stream(ctx, random.Random(rng.random()), acct, group, ua)
    return heapq.merge(own, slots, key=lambda e: (e.ts, e.id))


def _class_stream(
    ctx: Context, rng: random.Random, acct: Account, group: _Group, ua: str
) -> Stream:
    w = ctx.world
    style = rng.randrange(variants(1.0))  # how this student phrases things
    template = pick(rng, REASONING_TEMPLATES) if group.reasoning else "{q}"
    adopter = rng.uniform(0.0, 0.3)
    midnight = w.start.replace(hour=0, minute=0, second=0, microsecond=0)
    slot = midnight + timedelta(hours=group.class_hour - group.offset)
    while slot < w.end:
        t = max(w.start, slot + timedelta(hours=rng.uniform(0, 0.3) * group.hours))
        end = slot + timedelta(hours=group.hours)
        slot += timedelta(days=1)
        if end < w.start or rng.random() > 0.85:  # absent today
            continue
        j = rng.randrange(len(group.homework))
        while t < min(end, w.end):
            conv = group.homework[j % len(group.homework)]
            tpl = template if rng.random() < 0.6 else "{q}"
            text = vary(tpl.format(q=conv.turns[0]), style + j, 1.0)
            last = None
            model = choose_model(rng, ctx, t, adopter)
            for ex in conversation(
                ctx,
                rng,
                acct.account_id,
                t,
                conv,
                first=text,
                ip=group.nat_ip,
                ua=ua,
                model=model,
                temperature=None,
                max_turns=3,
            ):
                yield ex
                last = ex.ts
            t = (last or t) + timedelta(seconds=rng.lognormvariate(math.log(240), 0.6))
            j += 1


def vpn_user(
    ctx: Context,
    count: int,
    *,
    sessions_per_day: Rate = 2.0,
    vpn_share: Share = 0.9,
    max_turns: Size = 6,
) -> Cohort:
    """Privacy-minded people on a commercial VPN: a new datacenter exit every session.

    Basis: VPN clients reconnect per session and land on a different exit server (hosted
    in datacenters), so the address changes as often as a rotating proxy's; ``vpn_share``
    of the sessions go through the VPN, the rest from home. Otherwise ordinary chat.
    """

    def domain(rng: random.Random) -> str:
        return "proton.me" if rng.random() < 0.4 else pick(rng, CONSUMER_DOMAINS)

    def stream(rng: random.Random, acct: Account, offset: int) -> Stream:
        home = ctx.world.network.address(rng, "residential")

        def where(_: datetime) -> str:
            if rng.random() < vpn_share:
                return ctx.world.network.address(rng, "datacenter")
            return home

        per_day = sessions_per_day * rng.lognormvariate(0, 0.5)
        return sessions(
            ctx,
            rng,
            acct.account_id,
            lambda t: diurnal_next(rng, t, per_day, offset),
            where,
            ua=chat_client(rng),
            max_turns=max_turns,
        )

    tiers = [("free", 0.5), ("paid", 0.5)]
    return each_account(ctx, count, "legit", customer(ctx, tiers, email_domain=domain), stream)


def researcher(
    ctx: Context,
    count: int,
    *,
    per_day: Rate = 200.0,
    reasoning_share: Share = 0.6,
    judge_share: Share = 0.2,
) -> Cohort:
    """Academic researchers running experiments: systematic, eval-like, reasoning-heavy.

    Basis: published LLM evaluations (MT-Bench, Vicuna, WizardLM test sets) run as scripts:
    batches of hard chat prompts, ``reasoning_share`` wrapped to demand step-by-step
    reasoning and ``judge_share`` as LLM-as-judge grading prompts, sampled at several
    temperatures, a newly released model evaluated within hours. Moderate volume from a
    university address, research tier, verified, one lab per account.
    """

    def new_account(rng: random.Random, cc: str) -> Account:
        return make_account(
            rng,
            created_at=ctx.world.start - timedelta(days=rng.uniform(3, 700)),
            tier="research",
            country_code=cc,
            email_domain=f"{pick(rng, _ORG_WORDS)}-university{rng.getrandbits(8):02x}.edu",
            org_id=f"org_{rng.getrandbits(32):08x}",
            verified=True,
        )

    shares = (reasoning_share, judge_share)
    return each_account(
        ctx,
        count,
        "legit",
        new_account,
        lambda rng, acct, offset: _research_stream(
            ctx,
            rng,
            acct,
            offset,
            per_day * rng.lognormvariate(0, 0.4),
            shares,
        ),
    )


def _research_stream(
    ctx: Context,
    rng: random.Random,
    acct: Account,
    offset: int,
    per_day: float,
    shares: tuple[float, float],
) -> Stream:
    w = ctx.world
    reasoning_share, judge_share = shares
    ips = [w.network.address(rng, pick(rng, ("residential", "datacenter")))]
    ua = script_client(rng)
    batch = rng.randint(40, 120)
    families: list[tuple[Callable[[random.Random], str], float]] = [
        (lambda r: pick(r, REASONING_TEMPLATES), reasoning_share),
        (lambda r: pick(r, RUBRIC_TEMPLATES), judge_share),
        (lambda r: "{q}", max(0.0, 1.0 - reasoning_share - judge_share)),
    ]
    t = w.start
    while True:
        t = diurnal_next(rng, t, per_day / batch, offset)
        if t >= w.end:
            return
        models = w.models(t)
        model = NEW_MODEL if NEW_MODEL in models and rng.random() < 0.7 else pick(rng, MODELS)
        params: dict[str, Any] = {"temperature": pick(rng, (0.0, 0.7, 1.0))}
        params["max_tokens"] = pick(rng, (4096, 8192))
        if params["temperature"] and rng.random() < 0.3:
            params["n"] = 2
        template = weighted(rng, families)(rng)
        for conv in rng.sample(list(ctx.prompts.hard), min(batch, len(ctx.prompts.hard))):
            yield w.exchange(
                rng,
                account_id=acct.account_id,
                ts=t,
                ip=pick(rng, ips),
                user_agent=ua,
                model=model,
                messages=[user_message(template.format(q=conv.turns[0]))],
                params=params,
                style="mooncake-conv",
            )
            t += timedelta(seconds=rng.expovariate(1.0 / rng.uniform(0.5, 4.0)))
            if t >= w.end:
                return
