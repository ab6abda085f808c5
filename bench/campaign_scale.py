"""Scale of campaign linking: a 24,000-account hydra campaign inside a large synthetic log.

Streams ``--exchanges`` synthetic exchanges (generated on the fly, never stored) through
``CampaignLinker`` alone: ``--campaign`` hydra accounts (cards shared six ways, opened in one
six-hour burst on six consumer domains, a fresh residential proxy exit per request, one SDK
client, templated harvest prompts, about 26 requests a day each) among ``--customers``
ordinary accounts (their own card, opened over two years, a home address, chat prompts), in
time order. Reports throughput, refreshes and their time, peak memory, and whether the
campaign came out as one pure cluster.

    python bench/campaign_scale.py --exchanges 2000000 --campaign 24000 --customers 60000
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from distillwatch.attribute import CampaignLinker
from distillwatch.attribute.linker import LinkerConfig
from distillwatch.records import Account, Action, Exchange

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "qq.com")
TEMPLATES = (
    "Solve the following problem step by step. The last line of your response should be of "
    "the form Answer: $ANSWER.\n\n{q}",
    "{q}\n\nExplain your reasoning in detail before giving the final answer.",
    "Please reason carefully and show all intermediate steps.\n\n{q}",
)
WORDS = (
    "amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
    "kestrel", "lumen", "maple", "nectar", "onyx", "pollen", "quartz", "raven", "sable", "tundra",
)  # fmt: skip


def _accounts(rng: random.Random, campaign: int, customers: int) -> dict[str, Account]:
    out: dict[str, Account] = {}
    burst = T0 - timedelta(days=3)
    for i in range(campaign):
        out[f"hydra-{i:06d}"] = Account(
            account_id=f"hydra-{i:06d}",
            created_at=burst + timedelta(hours=rng.uniform(0, 6)),
            email_domain=rng.choice(DOMAINS),
            payment_fingerprint=f"pm_hydra_{i // 6}",
            verified=False,
        )
    for i in range(customers):
        out[f"user-{i:06d}"] = Account(
            account_id=f"user-{i:06d}",
            created_at=T0 - timedelta(days=rng.uniform(1, 730)),
            email_domain=rng.choice(DOMAINS),
            payment_fingerprint=f"pm_user_{i}",
        )
    return out


def _text(rng: random.Random, hydra: bool) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(6))
    if hydra:
        return rng.choice(TEMPLATES).format(q=f"{words.capitalize()}: find x if {words} = 7?")
    return f"can you tell me about {words} and why it matters to me"


def _stream(rng: random.Random, accounts: dict[str, Account], total: int) -> Iterator[Exchange]:
    ids = list(accounts)
    hydra = [a for a in ids if a.startswith("hydra")]
    # the campaign sends about 26 requests a day per account; customers fill the rest
    share = min(0.9, len(hydra) * 26 / (len(hydra) * 26 + (len(ids) - len(hydra)) * 15))
    homes = {
        a: f"{rng.randrange(11, 220)}.{rng.randrange(256)}.{rng.randrange(256)}.9" for a in ids
    }
    days = max(1.0, total / (len(hydra) * 26 / share))
    span = days * 86_400.0
    times = sorted(rng.uniform(0, span) for _ in range(total))
    for i, t in enumerate(times):
        is_hydra = rng.random() < share
        if is_hydra:
            acct = rng.choice(hydra)
            ip = f"{rng.randrange(11, 220)}.{rng.randrange(256)}.{rng.randrange(256)}.{i % 254 + 1}"
        else:
            acct = ids[len(hydra) + rng.randrange(len(ids) - len(hydra))]
            ip = homes[acct]
        yield Exchange(
            id=f"ex-{i:09d}",
            ts=T0 + timedelta(seconds=t),
            account_id=acct,
            ip=ip,
            user_agent="openai-python/1.51.2" if is_hydra else "Mozilla/5.0 Chrome/126",
            model="frontier-1",
            request={"messages": [{"role": "user", "content": _text(rng, is_hydra)}]},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=2_000_000)
    parser.add_argument("--campaign", type=int, default=24_000)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    accounts = _accounts(rng, args.campaign, args.customers)
    linker = CampaignLinker(accounts, LinkerConfig())
    refresh_s = 0.0
    refresh = linker.refresh

    def timed(t: float) -> None:
        nonlocal refresh_s
        t0 = time.perf_counter()
        refresh(t)
        refresh_s += time.perf_counter() - t0

    linker.refresh = timed  # type: ignore[method-assign]
    acted = 0
    t0 = time.perf_counter()
    n = 0
    for e in _stream(rng, accounts, args.exchanges):
        t = e.ts.timestamp()
        linker.observe(e, t)
        n += 1
        # the detector acts on a few campaign accounts early on (as it does per account)
        if acted < 20 and e.account_id.startswith("hydra") and rng.random() < 0.01:
            linker.acted(e.account_id, Action.THROTTLE, t)
            acted += 1
    seconds = time.perf_counter() - t0
    campaigns = list(linker.detected())
    hydra = {a for a in accounts if a.startswith("hydra")}
    print(f"exchanges {n:,}, accounts {len(accounts):,} ({len(hydra):,} in the campaign)")
    print(
        f"linker: {seconds:.1f} s ({n / seconds:,.0f} exchanges/s), of which "
        f"{linker.refreshes} refreshes {refresh_s:.1f} s; graph {linker.graph.edges:,} edges, "
        f"{len(linker.graph.nodes):,} keys; peak RSS {_rss_mib():,.0f} MiB"
    )
    for c in sorted(campaigns, key=lambda c: -c.size)[:5]:
        inside = sum(a in hydra for a in c.accounts)
        print(f"campaign {c.campaign_id}: {c.size:,} accounts, {inside:,} of them hydra")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
