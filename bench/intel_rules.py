"""What matching received behaviour rules live costs the engine, per decision point.

A simulated log is replayed once through the engine (signals, policy, campaign linker) with a
recorder that keeps the signal values the engine shows its linkers at each decision point;
those decision points are then replayed through ``IntelMatcher.observe_values`` with 0, 10
and 1,000 rules (best of 5), in two families:

* ``tail``: like the rules ``intel export --verdicts`` derives — 2 to 4 conditions, each bound
  in a population tail of the log's own values (``>=`` a 95-99.9th percentile, ``<=`` a
  0.1-5th): few accounts satisfy any condition;
* ``random``: the adversarial case for the index — 1 to 3 conditions with bounds uniform in
  [0, 1] (the first condition, which the table bisects on, holds for about half the
  accounts), then one no account satisfies, so every candidate is checked and none matches.

    python bench/intel_rules.py --sim sim-out

The figure is the matcher's own time (the rule table's look-up and the match bookkeeping); a
decision point's re-score (every signal evaluated) is printed beside it for scale.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distillwatch.attribute.factory import build_engine
from distillwatch.log import read_accounts, read_exchanges
from distillwatch.policy import load_policy
from distillwatch.records import Action, Exchange, SignalValue
from distillwatch.share.index import IntelIndex
from distillwatch.share.match import IntelMatcher
from distillwatch.share.trust import TrustPolicy

GROUP = "bench-group"
Point = tuple[str, list[SignalValue], int, float]


class _Recorder:
    """A linker that keeps what the engine shows it at each decision point."""

    def __init__(self) -> None:
        self.points: list[Point] = []

    def observe(self, exchange: Exchange, t: float) -> None:
        pass

    def acted(self, account_id: str, action: Action, t: float) -> None:
        pass

    def evidence(self, account_id: str, now: float) -> SignalValue | None:
        return None

    def campaign_of(self, account_id: str) -> str | None:
        return None

    def observe_values(
        self, account_id: str, values: Sequence[SignalValue], exchanges: int, now: float
    ) -> None:
        self.points.append((account_id, list(values), exchanges, now))


def decision_points(sim: Path) -> tuple[list[Point], float]:
    """Every decision point of a replay of ``sim``, and the replay's seconds per point."""
    engine = build_engine(load_policy(), read_accounts(sim / "accounts.jsonl"))
    rec = _Recorder()
    engine.add_linker(rec)
    exchanges = [e for batch in read_exchanges(sim / "exchanges.jsonl.gz") for e in batch]
    exchanges.sort(key=lambda e: (e.ts, e.id))
    t = time.perf_counter()
    for e in exchanges:
        engine.observe(e)
    return rec.points, (time.perf_counter() - t) / max(1, len(rec.points))


def _indicator(pattern: str) -> dict[str, Any]:
    return {
        "type": "indicator",
        "id": f"indicator--{uuid.uuid4()}",
        "modified": "2026-01-01T00:00:00.000Z",
        "pattern_type": "distillwatch",
        "pattern": pattern,
        "confidence": 60,
    }


def rules(family: str, n: int, points: list[Point], rng: random.Random) -> list[str]:
    layout = [(v.signal_id, v.version) for v in points[0][1]]
    seen: dict[str, list[float]] = {}
    for _, values, _, _ in points[:: max(1, len(points) // 5000)]:
        for v in values:
            if v.value is not None:
                seen.setdefault(v.signal_id, []).append(v.value)
    for xs in seen.values():
        xs.sort()
    varied = [(s, ver) for s, ver in layout if len(set(seen.get(s, []))) > 3]

    def q(sid: str, p: float) -> float:
        xs = seen[sid]
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    out = []
    for _ in range(n):
        conds = []
        if family == "tail":
            for sid, ver in rng.sample(varied, rng.randint(2, min(4, len(varied)))):
                if rng.random() < 0.7:
                    conds.append(f"{sid}@{ver}>={q(sid, rng.uniform(0.95, 0.999)) + 1e-6:.6f}")
                else:
                    conds.append(f"{sid}@{ver}<={q(sid, rng.uniform(0.001, 0.05)) - 1e-6:.6f}")
        else:
            *firsts, (last, last_ver) = rng.sample(layout, rng.randint(2, 4))
            for sid, ver in firsts:
                conds.append(f"{sid}@{ver}{rng.choice(['>=', '<='])}{rng.uniform(0, 1):.3f}")
            conds.append(f"{last}@{last_ver}>=1000000000")
        out.append(f"behaviour-rule v=1 group={GROUP} min_exchanges=5 all={','.join(conds)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim", type=Path, required=True, help="Folder of distillwatch simulate.")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    points, per_point = decision_points(args.sim)
    print(f"{len(points):,} decision points; a replay's cost per point: {1e6 * per_point:.0f} µs")
    rng = random.Random(args.seed)
    policy = TrustPolicy(GROUP, {}, {"member-a": 0.9})
    for family in ("tail", "random"):
        for n in (0, 10, 1000):
            index = IntelIndex(GROUP, b"\0" * 32)
            objects = [_indicator(p) for p in rules(family, n, points, rng)]
            index.add_bundle("member-a", {"objects": objects}, now=datetime.now(UTC))
            assert len(index.rules) == n, (index.stats, list(index.skipped.values())[:3])
            best = float("inf")
            for _ in range(5):
                m = IntelMatcher(index, policy)
                t = time.perf_counter()
                for aid, values, k, now in points:
                    m.observe_values(aid, values, k, now)
                best = min(best, time.perf_counter() - t)
            hit = sum(1 for h in m.hits.values() if h.rules)
            print(
                f"{family:>6}, {n:>5} rules: {1e6 * best / len(points):6.1f} µs per decision "
                f"point (best of 5); {hit} account(s) matched a rule"
            )


if __name__ == "__main__":
    main()
