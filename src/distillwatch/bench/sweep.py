"""Capability sweeps: a campaign mapping a model's agentic and tool-use skills, task by task.

Basis: the public reports describe campaigns that targeted agentic reasoning, tool use,
coding and data analysis across many task types, at millions of exchanges, shifting to a
new model within a day of its release. A developer building an agent attaches one
application's tools; a sweep walks every tool domain and task type in turn.
"""

from __future__ import annotations

import random
from datetime import timedelta

from distillwatch.bench.attacks import camouflage_params, harvest_params
from distillwatch.bench.population import (
    Cohort,
    Context,
    Hours,
    Jitter,
    Rate,
    Share,
    Stream,
    label,
    user_message,
    with_system,
)
from distillwatch.bench.tactics import (
    Addresses,
    IpStrategy,
    Pacer,
    PromptQueue,
    Timing,
    campaign_accounts,
)
from distillwatch.bench.tools import TOOL_DOMAINS, tool_subset
from distillwatch.bench.world import (
    AGENT_TEMPLATES,
    CODE_TEMPLATES,
    COUNTRIES,
    MODELS,
    NEW_MODEL,
    REASONING_TEMPLATES,
    SYSTEM_PROMPTS,
    TASK_TEMPLATES,
    USER_AGENTS,
    pick,
    variants,
    vary,
)
from distillwatch.records import Account


def capability_sweep(
    ctx: Context,
    count: int,
    *,
    per_account_per_day: Rate = 150.0,
    tool_share: Share = 0.7,
    camouflage: Share = 0.05,
    variation: Share = 0.5,
    accounts_per_card: Rate = 4.0,
    signup_spread_h: Hours = 12.0,
    ip_strategy: IpStrategy = "datacenter",
    timing: Timing = "steady",
    jitter: Jitter = 0.3,
    pivot_share: Share = 0.6,
    pivot_within_h: Hours = 12.0,
) -> Cohort:
    """A sweep over task types (code, maths, instructions, agent tasks) with tools attached.

    ``tool_share`` of the requests carry a subset of one tool domain's definitions
    (``tools`` in the request), the domain changing request by request; the rest are
    coding, maths and instruction tasks with their usual templates. ``count`` accounts share
    the work (opened in a burst, ``accounts_per_card`` to a card); ``ip_strategy``,
    ``timing``, ``jitter``, ``camouflage`` and ``variation`` as for the hydra.
    """
    rng = ctx.child_rng("campaign")
    campaign = f"camp_{rng.getrandbits(40):010x}"
    accounts = campaign_accounts(
        ctx, rng, count, signup_spread_h=signup_spread_h, accounts_per_card=accounts_per_card
    )
    cohort = Cohort(accounts, [label(a, "attack", ctx.name, campaign) for a in accounts])
    pacer = Pacer(
        ctx.world,
        rng,
        per_account_per_day * count,
        timing,
        jitter=jitter,
        utc_offset_h=pick(rng, COUNTRIES)[1],
    )
    knobs = (tool_share, camouflage, variation, pivot_share, pivot_within_h)
    cohort.streams.append(_sweep_stream(ctx, rng, accounts, pacer, ip_strategy, knobs))
    return cohort


def _sweep_stream(
    ctx: Context,
    rng: random.Random,
    accounts: list[Account],
    pacer: Pacer,
    ip_strategy: IpStrategy,
    knobs: tuple[float, float, float, float, float],
) -> Stream:
    tool_share, camouflage, variation, pivot_share, pivot_within_h = knobs
    w = ctx.world
    p = ctx.prompts
    # task types: (problems, templates, completion style)
    tasks = [
        (PromptQueue(rng, p.coding), CODE_TEMPLATES, "azure-code"),
        (PromptQueue(rng, p.math), REASONING_TEMPLATES, "mooncake-conv"),
        (PromptQueue(rng, p.tasks), TASK_TEMPLATES, "azure-conv"),
    ]
    agent = PromptQueue(rng, p.tasks + p.coding)
    domains = list(TOOL_DOMAINS)
    where = [Addresses(w, rng, ip_strategy) for _ in accounts]
    uas = [pick(rng, USER_AGENTS["sdk"]) for _ in accounts]
    pivot_at = w.release_at + timedelta(hours=rng.uniform(0.5, max(0.5, pivot_within_h)))
    step = 0
    t = pacer.next(rng, w.start)
    while t < w.end:
        i = rng.randrange(len(accounts))
        model = NEW_MODEL if t >= pivot_at and rng.random() < pivot_share else MODELS[0]
        system = pick(rng, SYSTEM_PROMPTS) if rng.random() < 0.3 else None
        style = "azure-conv"
        if rng.random() < camouflage:
            text = vary(pick(rng, p.chat).turns[0], rng.randrange(variants(1.0)), variation)
            params = camouflage_params(rng)
        else:
            params = harvest_params(rng, n_share=0.0)
            if rng.random() < tool_share:  # the next tool domain in the sweep
                params["tools"] = tool_subset(rng, domains[step % len(domains)])
                text = agent.next(AGENT_TEMPLATES, variation)
            else:
                queue, templates, style = tasks[step % len(tasks)]
                text = queue.next(templates, variation)
            step += 1
        yield w.exchange(
            rng,
            account_id=accounts[i].account_id,
            ts=t,
            ip=where[i].at(rng, t),
            user_agent=uas[i],
            model=model,
            messages=with_system(system, [user_message(text)]),
            params=params,
            style=style,
        )
        t = pacer.next(rng, t)
