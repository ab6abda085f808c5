"""Legitimate customers: the people a detector must not hurt.

Each builder takes the population size and its knobs and returns a ``Cohort`` whose streams
yield exchanges in time order. Prompts are kind A (people talking to chatbots) except for
evaluation runs, which rerun a fixed benchmark set — the hard negative that looks most like
harvesting. More hard negatives (shared addresses, VPNs, researchers) are in ``negatives``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from distillwatch.bench.population import (
    Cohort,
    Context,
    Rate,
    Share,
    Size,
    Stream,
    customer,
    each_account,
    user_message,
    with_system,
)
from distillwatch.bench.sessions import choose_model, sessions
from distillwatch.bench.tools import TOOL_DOMAINS, tool_subset
from distillwatch.bench.world import (
    AGENT_TEMPLATES,
    CODE_TEMPLATES,
    DIURNAL,
    MODELS,
    NEW_MODEL,
    REASONING_TEMPLATES,
    REWRITE_TEMPLATES,
    RUBRIC_TEMPLATES,
    SYSTEM_PROMPTS,
    TASK_TEMPLATES,
    USER_AGENTS,
    chat_client,
    diurnal_next,
    pick,
    script_client,
    variants,
    vary,
    weighted,
)
from distillwatch.records import Account, Exchange

_MEAN_DIURNAL = sum(DIURNAL) / 24
# what developers wrap their questions in: mostly nothing; prompts for the features they build
# (code completion, summarising, grading outputs, moderating text) now and then
_DEV_TEMPLATES = [
    (("{q}",), 0.75),
    (CODE_TEMPLATES, 0.08),
    (TASK_TEMPLATES, 0.07),
    (RUBRIC_TEMPLATES, 0.05),
    (REWRITE_TEMPLATES, 0.05),
]


def chat(ctx: Context, count: int, *, sessions_per_day: Rate = 2.0, max_turns: Size = 6) -> Cohort:
    """People in chat apps: multi-turn sessions, human think times, a diurnal rhythm.

    Basis: consumer chat traffic (ShareGPT, Koala, hh-rlhf and OpenAssistant prompts are
    such users' first turns). Most people stay on one home address that the ISP reassigns
    now and then, some sessions come from a phone; many dress a question up in their own
    words, so the same prompt text is rarely sent verbatim by many accounts.
    """
    return each_account(
        ctx,
        count,
        "legit",
        customer(ctx, [("free", 0.6), ("paid", 0.4)]),
        lambda rng, acct, offset: _chat_stream(
            ctx, rng, acct, offset, sessions_per_day * rng.lognormvariate(0, 0.6), max_turns
        ),
    )


def _chat_stream(
    ctx: Context, rng: random.Random, acct: Account, offset: int, per_day: float, max_turns: int
) -> Stream:
    w = ctx.world
    home = [w.network.address(rng, weighted(rng, [("residential", 0.8), ("residential6", 0.2)]))]

    def where(_: datetime) -> str:
        if rng.random() < 0.03:
            home[0] = w.network.address(rng, "residential")  # the ISP reassigned the address
        return w.network.address(rng, "mobile") if rng.random() < 0.2 else home[0]

    return sessions(
        ctx,
        rng,
        acct.account_id,
        lambda t: diurnal_next(rng, t, per_day, offset),
        where,
        ua=chat_client(rng),
        max_turns=max_turns,
    )


def developer(
    ctx: Context, count: int, *, bursts_per_day: Rate = 1.5, agent_share: Share = 0.3
) -> Cohort:
    """Developers: bursty coding work in office hours, iterating on code questions.

    Basis: API customers building software (the Azure code trace's lengths). ``agent_share``
    of them build tool-using agents and attach a subset of one tool domain to every request
    of a work burst; a few prompts grade outputs (LLM-as-judge rubrics) or ask for JSON.
    """
    return each_account(
        ctx,
        count,
        "legit",
        customer(ctx, [("free", 0.3), ("paid", 0.7)]),
        lambda rng, acct, offset: _developer_stream(
            ctx, rng, acct, offset, bursts_per_day, rng.random() < agent_share
        ),
    )


def _developer_stream(
    ctx: Context, rng: random.Random, acct: Account, offset: int, per_day: float, agent: bool
) -> Stream:
    w = ctx.world
    ip = w.network.address(rng, weighted(rng, [("residential", 0.6), ("datacenter", 0.4)]))
    ua = script_client(rng)
    system = pick(rng, SYSTEM_PROMPTS) if rng.random() < 0.5 else None
    adopter = rng.uniform(0.1, 0.7)
    temperatures = pick(rng, ((0.0, 0.2), (0.2, 0.6), (0.6, 0.7, 1.0)))
    max_tokens = weighted(rng, [(None, 0.5), (4096, 0.2), (8192, 0.2), (16384, 0.1)])
    domains = list(TOOL_DOMAINS)
    home = pick(rng, domains)
    t = w.start
    while True:
        t = diurnal_next(rng, t, per_day * rng.lognormvariate(0, 0.3), offset)
        if t >= w.end:
            return
        model = choose_model(rng, ctx, t, adopter)
        params: dict[str, Any] = {"temperature": pick(rng, temperatures)}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if rng.random() < 0.15:
            params["n"] = 2  # a few candidates to pick from
        if agent:  # the app's own tools, sometimes with a second domain's
            params["tools"] = tool_subset(rng, home)
            if rng.random() < 0.5:
                params["tools"] += tool_subset(rng, pick(rng, [d for d in domains if d != home]))
        elif rng.random() < 0.1:
            params["response_format"] = {"type": "json_object"}
        for _ in range(max(1, int(rng.lognormvariate(math.log(8), 0.7)))):
            conv = pick(rng, ctx.prompts.code if rng.random() < 0.7 else ctx.prompts.chat)
            tpl = pick(rng, AGENT_TEMPLATES if agent else weighted(rng, _DEV_TEMPLATES))
            text = tpl.format(q=conv.turns[0])
            if rng.random() < 0.5:  # asked in their own words
                text = vary(text, rng.randrange(variants(1.0)))
            yield w.exchange(
                rng,
                account_id=acct.account_id,
                ts=t,
                ip=ip,
                user_agent=ua,
                model=model,
                messages=with_system(system, [user_message(text)]),
                params=params,
                style="azure-code",
            )
            t += timedelta(seconds=rng.lognormvariate(math.log(45), 0.9))
            if t >= w.end:
                return


def app_backend(ctx: Context, count: int, *, per_day: Rate = 1500.0) -> Cohort:
    """An app's server: one system prompt, very high volume, a few datacenter addresses.

    Basis: products built on the API (support bots, summarisers, moderation services). Some
    backends moderate user text with rewrite prompts, some run a support agent with tools;
    traffic follows the app's users' day.
    """
    return each_account(
        ctx,
        count,
        "legit",
        customer(
            ctx,
            [("paid", 0.6), ("enterprise", 0.4)],
            email_domain=lambda rng: f"app{rng.getrandbits(24):06x}.io",
            verified=True,
        ),
        lambda rng, acct, offset: _backend_stream(
            ctx, rng, acct, offset, per_day * rng.lognormvariate(0, 0.5)
        ),
    )


def _backend_stream(
    ctx: Context, rng: random.Random, acct: Account, offset: int, per_day: float
) -> Stream:
    w = ctx.world
    ips = [w.network.address(rng, "datacenter") for _ in range(rng.randint(1, 4))]
    ua = script_client(rng)
    system = pick(rng, SYSTEM_PROMPTS)
    kind = weighted(rng, [("plain", 0.5), ("task", 0.25), ("moderation", 0.15), ("agent", 0.1)])
    template = {
        "plain": "{q}",
        "task": pick(rng, TASK_TEMPLATES),
        "moderation": pick(rng, (REWRITE_TEMPLATES[0], REWRITE_TEMPLATES[3])),
        "agent": pick(rng, AGENT_TEMPLATES),
    }[kind]
    model = weighted(rng, [(MODELS[1], 0.7), (MODELS[0], 0.3)])
    params: dict[str, Any] = {
        "temperature": pick(rng, (0.0, 0.3, 0.7)),
        "max_tokens": pick(rng, (512, 1024)),
    }
    if kind == "agent":
        params["tools"] = list(TOOL_DOMAINS[pick(rng, ("commerce", "assistant"))])
    mean_gap = 86400.0 / per_day
    t = w.start
    while True:
        hour = int((t.hour + offset) % 24)
        t += timedelta(seconds=w.tokens.gap(rng, mean_gap * _MEAN_DIURNAL / DIURNAL[hour]))
        if t >= w.end:
            return
        conv = pick(rng, ctx.prompts.chat)
        yield w.exchange(
            rng,
            account_id=acct.account_id,
            ts=t,
            ip=pick(rng, ips),
            user_agent=ua,
            model=model,
            messages=with_system(system, [user_message(template.format(q=conv.turns[0]))]),
            params=params,
        )


def enterprise_eval(
    ctx: Context, count: int, *, problems: Size = 150, runs_per_day: Rate = 1.5
) -> Cohort:
    """Evaluation runs: a fixed math/code benchmark set rerun, temperature 0 or n>1.

    Basis: companies benchmarking models before adopting one (GSM8K / HumanEval-style
    harnesses with chain-of-thought templates). The prompts are kind B, the hardest negative:
    the same problems a harvester sends, but a fixed suite rerun verbatim, and the new model
    is evaluated as soon as it ships.
    """
    return each_account(
        ctx,
        count,
        "legit",
        customer(
            ctx,
            [("enterprise", 1.0)],
            email_domain=lambda rng: f"corp{rng.getrandbits(24):06x}.com",
            org_id=lambda rng: f"org_{rng.getrandbits(32):08x}",
            verified=True,
        ),
        lambda rng, acct, offset: _eval_stream(ctx, rng, acct, offset, problems, runs_per_day),
    )


def _eval_stream(
    ctx: Context, rng: random.Random, acct: Account, offset: int, problems: int, per_day: float
) -> Stream:
    w = ctx.world
    math_share = rng.uniform(0.3, 1.0)
    n_math = int(problems * math_share)
    suite = [("m", c) for c in rng.sample(ctx.prompts.math, min(n_math, len(ctx.prompts.math)))]
    k = min(problems - n_math, len(ctx.prompts.coding))
    suite += [("c", c) for c in rng.sample(ctx.prompts.coding, k)]
    m_tpl, c_tpl = pick(rng, REASONING_TEMPLATES), pick(rng, CODE_TEMPLATES)
    ips = [w.network.address(rng, "datacenter") for _ in range(rng.randint(1, 2))]
    ua = script_client(rng)
    concurrency_gap = rng.uniform(0.3, 3.0)
    t = w.start
    while True:
        t = diurnal_next(rng, t, per_day, offset)
        if t >= w.end:
            return
        models = ctx.world.models(t)
        model = NEW_MODEL if NEW_MODEL in models and rng.random() < 0.6 else pick(rng, MODELS)
        sampled = rng.random() < 0.4
        params: dict[str, Any] = {"temperature": 0.8 if sampled else 0.0, "max_tokens": 2048}
        if sampled:
            params["n"] = pick(rng, (2, 4, 5, 8))
        for kind, conv in suite:
            tpl, style = (m_tpl, "mooncake-conv") if kind == "m" else (c_tpl, "azure-code")
            yield w.exchange(
                rng,
                account_id=acct.account_id,
                ts=t,
                ip=pick(rng, ips),
                user_agent=ua,
                model=model,
                messages=[user_message(tpl.format(q=conv.turns[0]))],
                params=params,
                style=style,
            )
            t += timedelta(seconds=rng.expovariate(1.0 / concurrency_gap))
            if t >= w.end:  # the log ends mid-run
                return


CLOCK_ALIGNED = 0.7
"""Share of scheduled jobs that fire on the wall clock's whole minutes (crontab's
granularity), so many customers' jobs start in the same second; the rest run a loop with a
sleep and drift wherever their service started."""


def cron(ctx: Context, count: int) -> Cohort:
    """Automations: perfectly regular timing, one templated prompt with changing content.

    Basis: scheduled jobs (digests, classifiers, translators) on a server: one address, an
    HTTP client, a fixed period, around the clock; most fire on whole minutes
    (``CLOCK_ALIGNED``).
    """
    return each_account(
        ctx,
        count,
        "legit",
        customer(ctx, [("free", 0.3), ("paid", 0.7)]),
        lambda rng, acct, offset: _cron_stream(ctx, rng, acct),
    )


def _cron_stream(ctx: Context, rng: random.Random, acct: Account) -> Iterator[Exchange]:
    w = ctx.world
    every = pick(rng, (60.0, 300.0, 900.0, 1800.0, 3600.0))
    per_tick = 1 if every >= 300 or rng.random() < 0.5 else rng.randint(2, 5)
    ip = w.network.address(rng, "datacenter")
    ua = pick(rng, USER_AGENTS["http"])
    template = pick(rng, TASK_TEMPLATES[:-1])
    params: dict[str, Any] = {"temperature": 0.0}
    if "JSON" in template:
        params["response_format"] = {"type": "json_object"}
    if rng.random() < CLOCK_ALIGNED:  # crontab: on whole minutes, at some minute offset
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = math.ceil((w.start - epoch).total_seconds() / every) * every
        t = epoch + timedelta(seconds=first + 60.0 * rng.randrange(int(every // 60)))
    else:  # a loop with a sleep, started whenever the service was
        t = w.start + timedelta(seconds=rng.uniform(0, every))
    while t < w.end:
        at = t + timedelta(seconds=rng.uniform(0, 0.2))
        for _ in range(per_tick):
            if at >= w.end:
                return
            conv = pick(rng, ctx.prompts.chat)
            yield w.exchange(
                rng,
                account_id=acct.account_id,
                ts=at,
                ip=ip,
                user_agent=ua,
                model=MODELS[1],
                messages=[user_message(template.format(q=conv.turns[0]))],
                params=params,
            )
            at += timedelta(seconds=rng.uniform(0.5, 2.0))
        t += timedelta(seconds=every)
