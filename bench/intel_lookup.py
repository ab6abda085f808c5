"""Look-up speed of received intel: digests, raw values and whole exchanges per second.

Builds an ``IntelIndex`` of ``--indicators`` keyed-hash indicators (a signed-and-verified
bundle's worth, indexed directly) and measures, single-threaded:

* ``digest``: ``IntelIndex.lookup`` of precomputed 16-byte digests (half hits, half misses) —
  the O(1) dict access the gateway does per attribute once its digests are cached;
* ``raw value``: ``IntelIndex.match_value`` of raw IP addresses (normalise + HMAC-SHA256 +
  look-up, per epoch held);
* ``exchange``: ``IntelMatcher.observe`` of exchanges (address, network and client of each;
  an unchanged address or client is not looked up again).

    python bench/intel_lookup.py --indicators 100000 --lookups 2000000
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from distillwatch.records import Exchange
from distillwatch.share.export import LIFETIME
from distillwatch.share.keys import GroupKeyer, epoch_id
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.pattern import PATTERN_TYPE, KeyedHash
from distillwatch.share.trust import TrustPolicy

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
GROUP = "bench-group"
SECRET = bytes(range(32))


def build_index(n: int, rng: random.Random) -> tuple[IntelIndex, list[str]]:
    """An index of ``n`` IP indicators; returns it and the raw addresses behind them."""
    epoch = epoch_id(NOW)
    keyer = GroupKeyer(SECRET, GROUP, epoch)
    index = IntelIndex(GROUP, SECRET)
    ips = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(n)
    ]
    objects: list[dict[str, Any]] = []
    until = (NOW + LIFETIME["ip"]).isoformat()
    for i, ip in enumerate(ips):
        digest = keyer.digest("ip", ip) or ""
        objects.append(
            {
                "type": "indicator",
                "id": f"indicator--{i:08d}",
                "modified": NOW.isoformat(),
                "pattern_type": PATTERN_TYPE,
                "pattern": KeyedHash("ip", GROUP, epoch, digest).render(),
                "valid_until": until,
                "confidence": 80,
            }
        )
    index.add_bundle("member-a", {"type": "bundle", "objects": objects}, now=NOW)
    return index, ips


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--indicators", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=2_000_000)
    ap.add_argument("--exchanges", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    t0 = time.perf_counter()
    index, ips = build_index(args.indicators, rng)
    build_s = time.perf_counter() - t0
    now = NOW.timestamp()

    known = list(index.by_digest)
    probes = [rng.choice(known) if i % 2 else rng.randbytes(16) for i in range(args.lookups)]
    lookup = index.lookup
    t0 = time.perf_counter()
    hits = 0
    for d in probes:
        if lookup(d, now):
            hits += 1
    digest_s = time.perf_counter() - t0

    n_raw = max(1, args.lookups // 10)
    raw = [rng.choice(ips) if i % 2 else f"172.16.{i % 256}.{i % 251}" for i in range(n_raw)]
    t0 = time.perf_counter()
    raw_hits = sum(1 for v in raw if index.match_value("ip", v, now))
    raw_s = time.perf_counter() - t0

    policy = TrustPolicy(GROUP, {}, {"member-a": 0.9})
    matcher = IntelMatcher(index, policy)
    accounts = max(1, args.exchanges // 50)
    exchanges = [
        Exchange(
            id=str(i),
            ts=NOW + timedelta(seconds=i),
            account_id=f"acct-{i % accounts}",
            ip=rng.choice(ips) if rng.random() < 0.05 else f"172.16.{rng.randrange(256)}.1",
            user_agent="sdk/1.0",
            model="m",
        )
        for i in range(args.exchanges)
    ]
    t0 = time.perf_counter()
    for e in exchanges:
        matcher.observe(e, now)
    observe_s = time.perf_counter() - t0
    matched = sum(1 for a in matcher.hits if matcher.evidence(a, now) is not None)

    result = {
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
        "indicators": args.indicators,
        "index_build_s": round(build_s, 2),
        "digest_lookups_per_s": round(rate(len(probes), digest_s)),
        "digest_hits": hits,
        "raw_value_lookups_per_s": round(rate(n_raw, raw_s)),
        "raw_value_hits": raw_hits,
        "exchanges_per_s": round(rate(len(exchanges), observe_s)),
        "accounts_matched": matched,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for k, v in result.items():
        print(f"{k:>24}: {v:,}" if isinstance(v, int) else f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
