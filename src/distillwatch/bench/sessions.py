"""Chat sessions: the conversation loop shared by chat users, VPN users, groups, resellers.

A session is one conversation from a source (kind A, or a group's homework) sent turn by
turn: the next turn leaves after the person has read the last reply and typed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from distillwatch.bench.population import Context, Stream, user_message, with_system
from distillwatch.bench.sources import Conversation
from distillwatch.bench.world import (
    MODELS,
    NEW_MODEL,
    REASONING_TEMPLATES,
    SYSTEM_PROMPTS,
    pick,
    variants,
    vary,
    weighted,
)


def choose_model(rng: random.Random, ctx: Context, t: datetime, early_adopter: float) -> str:
    """The new model with probability ``early_adopter`` once released, else a current one."""
    models = ctx.world.models(t)
    if NEW_MODEL in models and rng.random() < early_adopter:
        return NEW_MODEL
    return weighted(rng, [(MODELS[0], 0.55), (MODELS[1], 0.45)])


def sessions(
    ctx: Context,
    rng: random.Random,
    account_id: str,
    starts: Callable[[datetime], datetime],
    where: Callable[[datetime], str],
    *,
    ua: str,
    max_turns: int,
    pool: Sequence[Conversation] | None = None,
    reword: float = 0.6,
) -> Stream:
    """Chat sessions starting at ``starts(previous end)`` from address ``where(start)``.

    The first turn of ``reword`` of the sessions is dressed up in the person's own words.
    """
    adopter = rng.uniform(0.0, 0.5)
    temperature = weighted(rng, [(None, 0.6), (0.7, 0.25), (1.0, 0.15)])
    system = pick(rng, SYSTEM_PROMPTS) if rng.random() < 0.25 else None  # the app's own
    t = ctx.world.start
    while True:
        t = starts(t)
        if t >= ctx.world.end:
            return
        conv = pick(rng, pool or ctx.prompts.chat)
        first = conv.turns[0]
        if rng.random() < 0.06:  # "explain step by step", in one of the usual phrasings
            first = pick(rng, REASONING_TEMPLATES).format(q=first)
        if rng.random() < reword:
            first = vary(first, rng.randrange(variants(1.0)))
        for ex in conversation(
            ctx,
            rng,
            account_id,
            t,
            conv,
            first=first,
            ip=where(t),
            ua=ua,
            model=choose_model(rng, ctx, t, adopter),
            temperature=temperature,
            max_turns=max_turns,
            system=system,
        ):
            yield ex
            t = ex.ts


def conversation(
    ctx: Context,
    rng: random.Random,
    account_id: str,
    t: datetime,
    conv: Conversation,
    *,
    first: str,
    ip: str,
    ua: str,
    model: str,
    temperature: float | None,
    max_turns: int,
    system: str | None = None,
) -> Stream:
    """One multi-turn conversation: the source's turns, each after reading the last reply."""
    w = ctx.world
    params: dict[str, Any] = {"stream": True}
    if temperature is not None:
        params["temperature"] = temperature
    history: list[dict[str, Any]] = []
    for k, turn in enumerate(conv.turns[:max_turns]):
        history.append(user_message(first if k == 0 else turn))
        ex = w.exchange(
            rng,
            account_id=account_id,
            ts=t,
            ip=ip,
            user_agent=ua,
            model=model,
            messages=with_system(system, history),
            params=params,
        )
        yield ex
        reply = conv.replies[k] if k < len(conv.replies) else None
        if reply is None:
            return
        history.append({"role": "assistant", "content": reply})
        read = (ex.completion_tokens or 50) / rng.uniform(4.0, 12.0)  # reading speed
        t += timedelta(seconds=read + rng.lognormvariate(math.log(30), 0.8))
        if t >= w.end:
            return
