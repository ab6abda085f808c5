"""Crafted multi-account streams for the attribution tests: a campaign, its camouflage, and
the hard negatives (an organisation behind one NAT, a classroom on one address, a popular
prompt), each built from a seeded ``random.Random`` so every run sees the same log."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from distillwatch.attribute import CampaignLinker, LinkerConfig
from distillwatch.records import Account, Action, Exchange

T0 = datetime(2026, 3, 2, tzinfo=UTC)
TEMPLATES = (
    "Solve the following problem step by step. The last line of your response should be of "
    "the form Answer: $ANSWER.\n\n{q}",
    "{q}\n\nExplain your reasoning in detail before giving the final answer, and check it.",
)
CHAT = (
    "what's a good name for a golden retriever puppy?",
    "can you help me write a birthday message for my sister who is turning thirty",
    "how long should I boil an egg so the yolk stays a little soft in the middle",
    "translate 'where is the train station' into Portuguese please",
    "give me three ideas for a vegetarian dinner that takes under thirty minutes",
)
POPULAR = "Write a haiku about the ocean at night, with the moon reflecting on the waves."
SUBJECTS = ("rooks", "primes", "triangles", "coins", "trains", "clocks", "dice", "ladders")
WORDS = (
    "amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
    "kestrel", "lumen", "maple", "nectar", "onyx", "pollen", "quartz", "raven", "sable", "tundra",
)  # fmt: skip


@dataclass
class World:
    """Accounts and exchanges of a crafted log (exchanges sorted by time and id)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    groups: dict[str, set[str]] = field(default_factory=dict)

    def add(self, group: str, account: Account) -> None:
        self.accounts[account.account_id] = account
        self.groups.setdefault(group, set()).add(account.account_id)

    def sorted(self) -> list[Exchange]:
        return sorted(self.exchanges, key=lambda e: (e.ts, e.id))


def question(rng: random.Random) -> str:
    """A fresh problem: its own opening words, so only a template's edges repeat."""
    a, b = rng.randrange(2, 500), rng.randrange(2, 500)
    opening = " ".join(rng.choice(WORDS) for _ in range(3)).capitalize()
    return f"{opening}: how many {rng.choice(SUBJECTS)} fit when {a} are among {b} others?"


def ip(rng: random.Random) -> str:
    """A random public-looking IPv4 address (a fresh proxy exit, a home)."""
    return ".".join(
        str(rng.randrange(lo, hi)) for lo, hi in ((11, 220), (0, 256), (0, 256), (1, 255))
    )


def exchange(
    world: World,
    account: str,
    t: datetime,
    *,
    address: str,
    text: str,
    agent: str = "openai-python/1.51.2",
    model: str = "frontier-1",
) -> None:
    n = len(world.exchanges)
    world.exchanges.append(
        Exchange(
            id=f"ex-{n:07d}",
            ts=t,
            account_id=account,
            ip=address,
            user_agent=agent,
            model=model,
            request={"messages": [{"role": "user", "content": text}]},
            status=200,
        )
    )


def campaign(
    world: World,
    rng: random.Random,
    *,
    name: str = "camp",
    size: int = 10,
    per_card: int = 3,
    requests: int = 30,
    camouflage: float = 0.0,
    start: datetime = T0,
    hours: float = 48.0,
    opened_days_ago: float = 3.0,
) -> None:
    """A hydra: cards shared ``per_card`` ways, opened in one burst, rotating proxy exits,
    one client, templated harvest prompts; ``camouflage`` of its requests are ordinary chat."""
    cards = [f"pm_{name}_{i}" for i in range(size // per_card + 1)]
    opened = T0 - timedelta(days=opened_days_ago)
    for i in range(size):
        acct = Account(
            account_id=f"{name}-{i:03d}",
            created_at=opened + timedelta(minutes=rng.uniform(0, 150)),
            email_domain="gmail.com",
            payment_fingerprint=cards[i // per_card],
            verified=False,
        )
        world.add(name, acct)
        for _ in range(requests):
            t = start + timedelta(hours=rng.uniform(0, hours))
            if rng.random() < camouflage:
                text, agent = rng.choice(CHAT), "Mozilla/5.0 Chrome/126"
            else:
                text, agent = rng.choice(TEMPLATES).format(q=question(rng)), "openai-python/1.51.2"
            exchange(world, acct.account_id, t, address=ip(rng), text=text, agent=agent)


def customers(world: World, rng: random.Random, count: int, *, requests: int = 15) -> None:
    """Ordinary people: own card, opened any time in the last two years, a home address."""
    for i in range(count):
        acct = Account(
            account_id=f"user-{i:04d}",
            created_at=T0 - timedelta(days=rng.uniform(5, 700)),
            email_domain=rng.choice(("gmail.com", "outlook.com", "proton.me")),
            payment_fingerprint=f"pm_user_{i}",
        )
        world.add("customers", acct)
        home = ip(rng)
        for _ in range(requests):
            t = T0 + timedelta(hours=rng.uniform(0, 48))
            exchange(world, acct.account_id, t, address=home, text=rng.choice(CHAT), agent="app/2")


def office(world: World, rng: random.Random, count: int = 20) -> None:
    """One organisation behind one NAT: one card, one domain, opened the same hour, the same
    templated prompts and client — legitimately sharing everything."""
    nat = ip(rng)
    for i in range(count):
        acct = Account(
            account_id=f"office-{i:03d}",
            created_at=T0 - timedelta(days=40, minutes=rng.uniform(0, 60)),
            email_domain="acme-corp.com",
            payment_fingerprint="pm_acme",
            org_id="org_acme",
        )
        world.add("office", acct)
        for _ in range(30):
            t = T0 + timedelta(hours=rng.uniform(0, 48))
            text = rng.choice(TEMPLATES).format(q=question(rng))
            exchange(world, acct.account_id, t, address=nat, text=text)


def classroom(world: World, rng: random.Random, count: int = 30) -> None:
    """A class behind the school's one address (no organisation on file), each student with
    their own card, opened over months, working the same homework in class hours."""
    school = ip(rng)
    for i in range(count):
        acct = Account(
            account_id=f"student-{i:03d}",
            created_at=T0 - timedelta(days=rng.uniform(10, 200)),
            email_domain=rng.choice(("gmail.com", "outlook.com", "icloud.com")),
            payment_fingerprint=f"pm_student_{i}",
        )
        world.add("classroom", acct)
        for day in range(2):
            for _ in range(10):
                t = T0 + timedelta(days=day, hours=9 + rng.uniform(0, 1.5))
                text = TEMPLATES[0].format(q=question(rng))
                exchange(world, acct.account_id, t, address=school, text=text, agent="app/2")


def popular_prompt(world: World, rng: random.Random, count: int = 50) -> None:
    """Unrelated people sending the same viral prompt, from their own homes."""
    for i in range(count):
        acct = Account(
            account_id=f"fan-{i:03d}",
            created_at=T0 - timedelta(days=rng.uniform(5, 700)),
            email_domain="gmail.com",
            payment_fingerprint=f"pm_fan_{i}",
        )
        world.add("popular", acct)
        home = ip(rng)
        for _ in range(5):
            t = T0 + timedelta(hours=rng.uniform(0, 48))
            exchange(world, acct.account_id, t, address=home, text=POPULAR, agent="app/2")


def batch_pool(
    world: World,
    rng: random.Random,
    *,
    name: str = "pool",
    size: int = 24,
    batch: int = 8,
    batches: int = 150,
    hours: float = 6.0,
    lockstep: bool = True,
) -> None:
    """One scheduler's workers: each account its own card, opened weeks apart, its own
    sticky address, nothing else shared; a batch of ``batch`` requests leaves at once, one
    per account (``lockstep``; without it the same requests are spread over the hours)."""
    workers = []
    for i in range(size):
        acct = Account(
            account_id=f"{name}-{i:03d}",
            created_at=T0 - timedelta(days=rng.uniform(3, 60)),
            email_domain=rng.choice(("gmail.com", "outlook.com", "proton.me")),
            payment_fingerprint=f"pm_{name}_{i}",
            verified=False,
        )
        world.add(name, acct)
        workers.append((acct.account_id, ip(rng)))
    for _ in range(batches):
        at = T0 + timedelta(hours=rng.uniform(0, hours))
        for account, home in rng.sample(workers, batch):
            t = at + timedelta(seconds=rng.uniform(0, 0.5))
            if not lockstep:
                t = T0 + timedelta(hours=rng.uniform(0, hours))
            text = rng.choice(TEMPLATES).format(q=question(rng))
            exchange(world, account, t, address=home, text=text)


def backend(world: World, rng: random.Random, *, per_s: float = 0.5, hours: float = 6.0) -> None:
    """An app's server: one account, requests all day from one address, every few seconds."""
    acct = Account(
        account_id="backend-000",
        created_at=T0 - timedelta(days=300),
        email_domain="app-example.io",
        payment_fingerprint="pm_backend",
        verified=True,
    )
    world.add("backend", acct)
    home, t = ip(rng), T0
    while t < T0 + timedelta(hours=hours):
        exchange(world, acct.account_id, t, address=home, text=rng.choice(CHAT), agent="app/2")
        t += timedelta(seconds=rng.expovariate(per_s))


TEST_CONFIG = LinkerConfig(refresh_min_edges=50, min_refresh_s=600.0)


def run(
    exchanges: Iterable[Exchange],
    accounts: dict[str, Account],
    acted: Iterable[str] = (),
    config: LinkerConfig = TEST_CONFIG,
) -> CampaignLinker:
    """Feed a linker the exchanges in order; accounts in ``acted`` are acted on at their
    first exchange (as the engine would report); refresh once at the end."""
    linker = CampaignLinker(accounts, config)
    flagged = set(acted)
    last = 0.0
    for e in exchanges:
        last = e.ts.timestamp()
        linker.observe(e, last)
        if e.account_id in flagged:
            linker.acted(e.account_id, Action.THROTTLE, last)
    linker.refresh(last)
    return linker


def groups_of(linker: CampaignLinker) -> list[set[str]]:
    """The membership of every cluster the linker holds (detected or not)."""
    return sorted((set(c.members) for c in linker.campaigns.values()), key=lambda s: min(s))


def every(world: World) -> Iterator[Exchange]:
    yield from world.sorted()
