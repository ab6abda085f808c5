"""The evasion machinery attack profiles share: accounts, addresses, timing and prompt plans.

Each piece is a knob of the attack profiles (see ``attacks``, ``sweep``, ``reseller``):

* ``campaign_accounts``: how many accounts, how many share a card, how spread their sign-ups;
* ``Addresses``: the IP strategy (``rotating-residential``: a new proxy exit per request;
  ``sticky-residential``: one residential exit held for hours; ``datacenter``: a few servers);
* ``Pacer``: timing (``steady`` trace-shaped gaps around the clock, ``bursty`` sessions,
  ``diurnal`` mimicking a person's day), with jitter and a self-imposed rate limit;
* ``PromptPlan``: which prompts (kind-B problems in template families, a camouflage share of
  kind-A chat prompts) and how much they are re-worded (``variation``).

Everything is O(accounts) or O(prompt pool): nothing grows with the number of exchanges.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from distillwatch.bench.population import (
    Context,
    country,
    make_account,
    payment_fingerprint,
    user_message,
    with_system,
)
from distillwatch.bench.sources import Conversation
from distillwatch.bench.world import (
    SYSTEM_PROMPTS,
    World,
    diurnal_next,
    pick,
    variants,
    vary,
    weighted,
)
from distillwatch.records import Account

IpStrategy = Literal["rotating-residential", "sticky-residential", "datacenter"]
Timing = Literal["steady", "bursty", "diurnal"]


def campaign_accounts(
    ctx: Context,
    rng: random.Random,
    count: int,
    *,
    signup_spread_h: float,
    accounts_per_card: float,
    lead_days: tuple[float, float] = (1.5, 9.0),
    tiers: Sequence[tuple[str, float]] = (("paid", 0.8), ("free", 0.2)),
) -> list[Account]:
    """``count`` accounts opened over ``signup_spread_h`` hours, sharing payment methods.

    The window ends ``lead_days`` before the log starts; every ``accounts_per_card`` accounts
    share one card (the public reports: fraudulent accounts paid with a few shared methods).
    """
    cards = [payment_fingerprint(rng) for _ in range(max(1, math.ceil(count / accounts_per_card)))]
    end = ctx.world.start - timedelta(days=rng.uniform(*lead_days))
    created = sorted(end - timedelta(hours=rng.uniform(0, signup_spread_h)) for _ in range(count))
    accounts = []
    for i, at in enumerate(created):
        cc, _ = country(rng)
        accounts.append(
            make_account(
                rng,
                created_at=at,
                tier=weighted(rng, tiers),
                country_code=cc,
                payment=cards[i] if len(cards) >= count else pick(rng, cards),
                verified=False,
            )
        )
    return accounts


class Addresses:
    """Where one account's requests come from under an IP strategy."""

    def __init__(self, world: World, rng: random.Random, strategy: IpStrategy) -> None:
        self.world = world
        self.strategy = strategy
        self.servers = [world.network.address(rng, "datacenter") for _ in range(rng.randint(1, 3))]
        self.exit = world.network.address(rng, "residential")
        self.until: datetime | None = None

    def at(self, rng: random.Random, t: datetime) -> str:
        net = self.world.network
        if self.strategy == "datacenter":
            return pick(rng, self.servers)
        if self.strategy == "rotating-residential":  # a new proxy exit per request
            kind = weighted(rng, [("residential", 0.7), ("residential6", 0.1), ("mobile", 0.2)])
            return net.address(rng, kind)
        if self.until is None or t >= self.until:  # a sticky session held for hours
            self.exit = net.address(rng, weighted(rng, [("residential", 0.85), ("mobile", 0.15)]))
            self.until = t + timedelta(hours=rng.uniform(2.0, 24.0))
        return self.exit


class Pacer:
    """Arrival times of ``per_day`` requests with a timing strategy.

    ``jitter`` (0..) widens every gap by mean-one log-normal noise; ``min_gap_s`` keeps the
    sender under a rate limit it knows about.
    """

    def __init__(
        self,
        world: World,
        rng: random.Random,
        per_day: float,
        timing: Timing,
        *,
        jitter: float = 0.0,
        utc_offset_h: float = 0.0,
        min_gap_s: float = 0.0,
    ) -> None:
        self.world = world
        self.per_day = per_day
        self.timing = timing
        self.jitter = jitter
        self.offset = utc_offset_h
        self.min_gap_s = min_gap_s
        self.burst = max(2, int(rng.uniform(4, 12)))
        self.left = 0

    def _noise(self, rng: random.Random) -> float:
        s = self.jitter
        return rng.lognormvariate(-s * s / 2, s) if s > 0 else 1.0

    def next(self, rng: random.Random, t: datetime) -> datetime:
        mean = 86400.0 / self.per_day
        if self.timing == "diurnal":
            nxt = diurnal_next(rng, t, self.per_day, self.offset)
            nxt += timedelta(seconds=(nxt - t).total_seconds() * (self._noise(rng) - 1))
        elif self.timing == "bursty":
            if self.left <= 0:  # a pause, then a session of ``burst`` requests
                self.left = self.burst
                gap = rng.expovariate(1.0 / (mean * self.burst)) * self._noise(rng)
            else:
                gap = rng.lognormvariate(math.log(20), 0.6) * self._noise(rng)
            self.left -= 1
            nxt = t + timedelta(seconds=gap)
        else:
            nxt = t + timedelta(seconds=self.world.tokens.gap(rng, mean) * self._noise(rng))
        return max(nxt, t + timedelta(seconds=self.min_gap_s))


class PromptQueue:
    """A campaign's harvest plan: every problem once, then re-wrapped, never resent verbatim.

    Round ``r`` of the pool asks problem ``i`` as wording ``(offset[i] + r) mod (k * v)`` of
    the ``k`` templates asked for and the ``v`` re-wordings of ``vary`` at ``breadth``, so a
    request recurs only after ``k * v`` full rounds, with O(pool) memory however long the
    campaign runs.
    """

    def __init__(self, rng: random.Random, pool: tuple[Conversation, ...]) -> None:
        self.rng = rng
        self.pool = pool
        self.offset = [rng.randrange(1 << 16) for _ in pool]
        self.order: deque[int] = deque()
        self.round = -1

    def next(self, templates: tuple[str, ...], breadth: float = 0.0) -> str:
        if not self.order:
            idx = list(range(len(self.pool)))
            self.rng.shuffle(idx)
            self.order.extend(idx)
            self.round += 1
        i = self.order.popleft()
        k = len(templates)
        wording = (self.offset[i] + self.round) % (k * variants(breadth))
        return vary(templates[wording % k].format(q=self.pool[i].turns[0]), wording // k, breadth)


class PromptPlan:
    """What a campaign sends: problems in weighted template families, plus camouflage.

    ``families`` are (templates, weight); ``camouflage`` is the share of requests that are
    kind-A chat prompts (what ordinary users ask), re-worded like the rest; ``variation``
    (0..1) is how widely requests are re-worded (lead-ins, closings) on top of the templates.
    """

    def __init__(
        self,
        ctx: Context,
        rng: random.Random,
        pool: tuple[Conversation, ...],
        families: Sequence[tuple[tuple[str, ...], float]],
        *,
        camouflage: float,
        variation: float,
        system_share: float = 0.3,
    ) -> None:
        self.ctx = ctx
        self.queue = PromptQueue(rng, pool)
        self.families = [(f, w) for f, w in families if w > 0] or [(("{q}",), 1.0)]
        self.camouflage = camouflage
        self.variation = variation
        self.system_share = system_share

    def next(self, rng: random.Random) -> tuple[list[dict[str, Any]], bool]:
        """The messages of the next request, and whether it is camouflage."""
        system = pick(rng, SYSTEM_PROMPTS) if rng.random() < self.system_share else None
        if rng.random() < self.camouflage:
            conv = pick(rng, self.ctx.prompts.chat)
            text = vary(conv.turns[0], rng.randrange(variants(1.0)), self.variation)
            return with_system(system, [user_message(text)]), True
        text = self.queue.next(weighted(rng, self.families), self.variation)
        return with_system(system, [user_message(text)]), False
