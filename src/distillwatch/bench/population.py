"""The profile contract and the helpers every profile builds accounts with.

A profile turns ``count`` and its knobs into a ``Cohort``: accounts, their labels, and one or
more exchange streams, each in time order (a campaign may drive all its accounts from one
stream). Streams are lazy, so a log of any size is generated in O(accounts) memory.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import Field

from distillwatch.bench.sources import KINDS, Conversation
from distillwatch.bench.world import CONSUMER_DOMAINS, COUNTRIES, World, weighted
from distillwatch.records import Account, Exchange, Label

Stream = Iterator[Exchange]

# Knob types: a builder's keyword arguments are its knobs, validated from these annotations
# when a scenario is loaded (``scenario.knob_model``).
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Rate = Annotated[float, Field(gt=0.0)]
Hours = Annotated[float, Field(ge=0.0)]
Days = Annotated[float, Field(ge=0.0)]
Jitter = Annotated[float, Field(ge=0.0, le=3.0)]  # sigma of mean-one log-normal noise
Size = Annotated[int, Field(ge=1)]


@dataclass
class Cohort:
    """What one population contributes to the log."""

    accounts: list[Account] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)


@dataclass(frozen=True)
class Prompts:
    """The prompt pools profiles draw from, by purpose."""

    chat: tuple[Conversation, ...]  # kind A: people talking to chatbots
    code: tuple[Conversation, ...]  # kind A prompts about programming
    tasks: tuple[Conversation, ...]  # kind B: what distillation pipelines send
    math: tuple[Conversation, ...]  # kind B benchmark problems (gsm8k)
    coding: tuple[Conversation, ...]  # kind B code problems (humaneval, mbpp, code-alpaca)
    hard: tuple[Conversation, ...]  # kind A evaluation-style prompts (benchmarks of chat)

    @classmethod
    def from_pools(cls, pools: dict[str, list[Conversation]]) -> Prompts:
        a = [c for s, cs in pools.items() if KINDS.get(s) == "A" for c in cs]
        b = [c for s, cs in pools.items() if KINDS.get(s) == "B" for c in cs]
        # instructions sit at the edges; the middle of a long prompt is material
        code = [c for c in a if _CODE.search(c.turns[0][:600] + c.turns[0][-600:])]
        hard = [c for s in _EVAL_SETS for c in pools.get(s, ())]
        return cls(
            chat=tuple(a),
            code=tuple(code) or tuple(a),
            tasks=tuple(b),
            math=tuple(pools.get("gsm8k", ())) or tuple(b),
            coding=tuple(c for s in ("humaneval", "mbpp", "code-alpaca") for c in pools.get(s, ()))
            or tuple(b),
            hard=tuple(hard) or tuple(a),
        )


_EVAL_SETS = ("mt-bench", "vicuna", "wizardlm", "koala", "alpaca-eval", "oasst")


_CODE = re.compile(
    r"```|\bdef |\bfunction\b|\bclass \w|\bpython\b|javascript|typescript|\bjava\b|\bsql\b|"
    r"c\+\+|\bregex|\bcode\b|\bbash\b|traceback|\bcompile|\bapi\b|\bjson\b|\bscript\b",
    re.IGNORECASE,
)

Builder = Callable[..., Cohort]


@dataclass
class Context:
    """What a profile builder gets besides its knobs."""

    world: World
    prompts: Prompts
    rng: random.Random
    name: str  # the population's name, used for labels and random streams

    def child_rng(self, i: int | str) -> random.Random:
        return random.Random(f"{self.world.seed}/{self.name}/{i}")


def account_id(rng: random.Random) -> str:
    return f"acct_{rng.getrandbits(48):012x}"


def payment_fingerprint(rng: random.Random) -> str:
    return f"pm_{rng.getrandbits(64):016x}"


def country(rng: random.Random) -> tuple[str, int]:
    c: tuple[str, int] = COUNTRIES[rng.randrange(len(COUNTRIES))]
    return c


def established_signup(rng: random.Random, start: datetime) -> datetime:
    """Sign-up of an ordinary account: mostly months ago, some in the last few days."""
    days = rng.uniform(0.2, 4.0) if rng.random() < 0.06 else rng.uniform(5, 900)
    return start - timedelta(days=days)


def make_account(
    rng: random.Random,
    *,
    created_at: datetime,
    tier: str,
    country_code: str,
    email_domain: str | None = None,
    payment: str | None = None,
    org_id: str | None = None,
    verified: bool | None = None,
) -> Account:
    return Account(
        account_id=account_id(rng),
        created_at=created_at,
        org_id=org_id,
        email_domain=email_domain or weighted(rng, [(d, 1.0) for d in CONSUMER_DOMAINS]),
        payment_fingerprint=payment or payment_fingerprint(rng),
        country=country_code,
        tier=tier,
        verified=rng.random() < 0.3 if verified is None else verified,
    )


def customer(
    ctx: Context, tiers: Sequence[tuple[str, float]], **fields: Any
) -> Callable[[random.Random, str], Account]:
    """An account maker for ordinary customers: established sign-ups, ``tiers`` weighted.

    ``fields`` are passed to ``make_account``; a callable value is called with the rng.
    """

    def make(rng: random.Random, country_code: str) -> Account:
        extra = {k: v(rng) if callable(v) else v for k, v in fields.items()}
        return make_account(
            rng,
            created_at=established_signup(rng, ctx.world.start),
            tier=weighted(rng, tiers),
            country_code=country_code,
            **extra,
        )

    return make


def each_account(
    ctx: Context,
    count: int,
    kind: str,
    new_account: Callable[[random.Random, str], Account],
    stream: Callable[[random.Random, Account, int], Stream],
    campaign: Callable[[Account], str] | None = None,
) -> Cohort:
    """``count`` independent accounts, each with its own rng, country and stream."""
    cohort = Cohort()
    for i in range(count):
        rng = ctx.child_rng(i)
        cc, offset = country(rng)
        acct = new_account(rng, cc)
        cohort.accounts.append(acct)
        cohort.labels.append(label(acct, kind, ctx.name, campaign(acct) if campaign else None))
        cohort.streams.append(stream(rng, acct, offset))
    return cohort


def label(acct: Account, kind: str, profile: str, campaign: str | None = None) -> Label:
    return Label(account_id=acct.account_id, label=kind, campaign_id=campaign, profile=profile)


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def with_system(system: str | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return ([{"role": "system", "content": system}] if system else []) + messages
