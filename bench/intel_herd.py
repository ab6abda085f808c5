"""Herd immunity: the same campaigns reach providers A, B and C, A first. Does sharing help?

Takes a simulated log (``distillwatch simulate``), splits it into three providers by a hash of
the account id — every campaign then has accounts at all three — and delays the attacking
accounts' traffic (and sign-ups) by ``--stagger-hours`` at B and twice that at C. Each provider
runs the full engine (signals, policy, campaign linker). A publisher exports, every
``--publish-hours`` of its log, what it has detected *by then* (causal: its replay is paused at
that moment), signs it, and the bundle reaches the others ``--delay-hours`` later; a receiver
verifies it and indexes it mid-replay, and its engine gets the ``intel.match`` evidence next to
the campaign evidence. A publisher shares its detected campaigns and, one by one, the
accounts it has acted on (``Collector(acted=...)``). Reported per provider, without and with
sharing, under the trust policies of ``--policies`` (``default``: 2 members must agree before
intel alone may act, or 1 member and a local signal — the account's own score without intel
at least ``--local-min-score``, or a local campaign; ``partner``: one trusted member is enough;
``members-only``: the default without local corroboration):

* leakage: exchanges served to attacking accounts before their first action (throttle+);
* FPR: legitimate accounts acted on / legitimate accounts;
* per campaign, hours from A's first action to B's (and C's).

A malicious member M who knows B's and C's legitimate customers publishes keyed hashes of
their cards and addresses at confidence 100 from the start; its effect on their FPR is
reported under each policy.

    distillwatch simulate --scenario default --scale 0.5 --days 3 --split dev --out sim-herd
    python bench/intel_herd.py --sim sim-herd
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillwatch.attribute.factory import build_engine
from distillwatch.attribute.linker import CampaignLinker
from distillwatch.clock import to_datetime
from distillwatch.detect import Engine
from distillwatch.log import read_accounts, read_exchanges, read_labels
from distillwatch.policy import load_policy
from distillwatch.records import Account, Action, Exchange
from distillwatch.share.collect import Collector, acted_accounts
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.keys import GroupKeyer, epoch_id
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.pattern import PATTERN_TYPE, KeyedHash
from distillwatch.share.sign import Signer, sign, verify
from distillwatch.share.trust import TrustPolicy

GROUP = "herd"
SECRET = bytes(range(32))
PROVIDERS = ("A", "B", "C")
KEYS = {m: Ed25519PrivateKey.generate() for m in (*PROVIDERS, "M")}
SIGNERS = {m: Signer(m, k.public_key()) for m, k in KEYS.items()}


@dataclass
class World:
    logs: dict[str, list[Exchange]]
    accounts: dict[str, dict[str, Account]]
    labels: dict[str, tuple[str, str | None]]
    """account → (label, true campaign id)."""
    profiles: dict[str, str]
    """account → simulated profile (to report where leakage is)."""


def provider_of(account_id: str) -> str:
    return PROVIDERS[int(hashlib.sha256(account_id.encode()).hexdigest(), 16) % 3]


def split(sim: Path, stagger: timedelta) -> World:
    read = read_labels(sim / "labels.jsonl")
    labels = {a: (lb.label, lb.campaign_id) for a, lb in read.items()}
    accounts = read_accounts(sim / "accounts.jsonl")
    shift = {p: stagger * i for i, p in enumerate(PROVIDERS)}
    logs: dict[str, list[Exchange]] = {p: [] for p in PROVIDERS}
    accts: dict[str, dict[str, Account]] = {p: {} for p in PROVIDERS}
    for aid, acct in accounts.items():
        p = provider_of(aid)
        if labels.get(aid, ("legit", None))[0] == "attack" and acct.created_at is not None:
            acct = msgspec.structs.replace(acct, created_at=acct.created_at + shift[p])
        accts[p][aid] = acct
    for batch in read_exchanges(sim / "exchanges.jsonl.gz"):
        for e in batch:
            p = provider_of(e.account_id)
            if labels.get(e.account_id, ("legit", None))[0] == "attack":
                e = msgspec.structs.replace(e, ts=e.ts + shift[p])
            logs[p].append(e)
    for p in PROVIDERS:
        logs[p].sort(key=lambda e: (e.ts, e.id))
    return World(logs, accts, labels, {a: lb.profile or "?" for a, lb in read.items()})


Bundle = tuple[float, str, dict[str, Any]]
"""(when it reaches the others, publisher, signed envelope)."""


def run(
    world: World,
    p: str,
    received: Sequence[Bundle],
    trust: TrustPolicy | None,
    publish: float | None = None,
    delay: float = 3600.0,
    share_monitored: bool = False,
) -> tuple[Engine, list[Bundle]]:
    """Replay provider ``p``; index ``received`` bundles as they arrive; publish every
    ``publish`` seconds (what was detected by then)."""
    policy = load_policy()
    accounts = world.accounts[p]
    engine = build_engine(policy, accounts)
    linker = engine.linker
    assert isinstance(linker, CampaignLinker)
    index = IntelIndex(GROUP, SECRET)
    if trust is not None:  # intel beside the campaign evidence, with the ceiling, as scan and
        IntelMatcher(index, trust, accounts).attach(engine, ceiling=True)  # the gateway do
    pending = sorted(received, key=lambda b: b[0])
    seen: set[str] = set()
    log = world.logs[p]
    out: list[Bundle] = []
    next_pub = log[0].ts.timestamp() + publish if publish and log else None
    for i, e in enumerate(log):
        t = e.ts.timestamp()
        while pending and pending[0][0] <= t:
            at, _, env = pending.pop(0)
            signer, bundle = verify(env, SIGNERS, now=to_datetime(at), seen=seen)
            index.add_bundle(signer.member, bundle, now=to_datetime(at))
        if next_pub is not None and publish and t >= next_pub:
            env = export(world, p, engine, linker, log[:i], next_pub, share_monitored)
            out.append((next_pub + delay, p, env))
            next_pub += publish
        engine.observe(e)
    return engine, out


def export(
    world: World,
    p: str,
    engine: Engine,
    linker: CampaignLinker,
    prefix: list[Exchange],
    t: float,
    share_monitored: bool = False,
) -> dict[str, Any]:
    camps = list(linker.detected())
    # observed accounts only: ``Engine.verdicts`` would add every known account mid-replay
    verdicts = [engine.verdict(st, t) for st in engine.states.values()]
    campaigns = {c.campaign_id: c.accounts for c in camps}
    acted = acted_accounts(verdicts)
    if share_monitored:  # an experiment: accounts only watched (monitor) are shared too
        acted |= {a for a, st in engine.states.items() if st.reported >= Action.MONITOR.rank}
    collector = Collector(campaigns, world.accounts[p], acted=acted)
    collector.run(lambda: [prefix])
    now = to_datetime(t)
    config = ExportConfig(member=p, group=GROUP, group_secret=SECRET)
    bundle, _ = build_bundle(camps, collector, config, now=now, verdicts=verdicts)
    body = json.loads(bundle.serialize())
    return sign(body, p, KEYS[p], signed_at=now, expires=now + timedelta(days=30))


def malicious(world: World, p: str) -> Bundle:
    """M's bundle: keyed hashes of ``p``'s legitimate customers' cards and addresses."""
    log = world.logs[p]
    start = log[0].ts
    epoch = epoch_id(start)
    keyer = GroupKeyer(SECRET, GROUP, epoch)
    legit = {a for a, (lb, _) in world.labels.items() if lb == "legit"}
    values: set[tuple[str, str]] = set()
    for aid, acct in world.accounts[p].items():
        if aid in legit and acct.payment_fingerprint:
            values.add(("card", acct.payment_fingerprint))
    for e in log:
        if e.account_id in legit:
            values.add(("ip", e.ip))
    objects = []
    for i, (kind, value) in enumerate(sorted(values)):
        digest = keyer.digest(kind, value)
        if digest is None:
            continue
        objects.append(
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": f"indicator--00000000-0000-4000-8000-{i:012d}",
                "created": start.isoformat(),
                "modified": start.isoformat(),
                "pattern_type": PATTERN_TYPE,
                "pattern": KeyedHash(kind, GROUP, epoch, digest).render(),
                "valid_from": start.isoformat(),
                "confidence": 100,
            }
        )
    bundle = {
        "type": "bundle",
        "id": f"bundle--{'0' * 8}-0000-4000-8000-{'1' * 12}",
        "objects": objects,
    }
    env = sign(bundle, "M", KEYS["M"], signed_at=start, expires=start + timedelta(days=30))
    return (start.timestamp(), "M", env)


def score(world: World, p: str, engine: Engine) -> dict[str, Any]:
    leak = attack = legit = acted_legit = 0
    intel = next((x for x in engine.linkers if isinstance(x, IntelMatcher)), None)
    matched = {"attack": 0, "legit": 0}
    if intel is not None:
        for aid, h in intel.hits.items():
            if h.refs:
                matched[world.labels.get(aid, ("legit", None))[0]] += 1
    first: dict[str, float] = {}
    by_profile: dict[str, int] = {}
    by_campaign: dict[str, int] = {}
    for aid, st in engine.states.items():
        label, camp = world.labels.get(aid, ("legit", None))
        if label == "attack":
            attack += 1
            n = st.served_before_action if st.served_before_action is not None else st.served
            leak += n
            prof = world.profiles.get(aid, "?")
            by_profile[prof] = by_profile.get(prof, 0) + n
            by_campaign[camp or aid] = by_campaign.get(camp or aid, 0) + n
            if camp and st.first_action_t is not None:
                first[camp] = min(first.get(camp, st.first_action_t), st.first_action_t)
        elif st.exchanges:
            legit += 1
            acted_legit += st.first_action_t is not None
    return {
        "attack_accounts": attack,
        "leakage": leak,
        "legit_accounts": legit,
        "legit_acted": acted_legit,
        "fpr": acted_legit / legit if legit else 0.0,
        "intel_matched": matched,
        "leakage_by_profile": dict(sorted(by_profile.items())),
        "first_action": first,
        "campaign_leakage": by_campaign,
    }


INTERNAL = ("first_action", "campaign_leakage")


def hours_after(a: Mapping[str, float], b: Mapping[str, float]) -> float | None:
    gaps = [(b[c] - a[c]) / 3600 for c in a if c in b]
    return round(statistics.median(gaps), 2) if gaps else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sim", type=Path, required=True, help="Folder written by distillwatch simulate."
    )
    ap.add_argument("--stagger-hours", type=float, default=12.0)
    ap.add_argument("--publish-hours", type=float, default=3.0)
    ap.add_argument("--delay-hours", type=float, default=1.0)
    ap.add_argument("--out", type=Path, help="Write the results as JSON here.")
    ap.add_argument(
        "--policies",
        default="default,partner",
        help="Trust policies to run, of: default (2 members, or 1 and a local signal), "
        "partner (1 member), members-only (2 members; no local corroboration).",
    )
    ap.add_argument(
        "--share-monitored",
        action="store_true",
        help="Experiment: publishers share accounts they only monitor, not just those acted on.",
    )
    ap.add_argument(
        "--local-min-score", type=float, help="The default policy's local_min_score (0.5)."
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    world = split(args.sim, timedelta(hours=args.stagger_hours))
    pub, delay = args.publish_hours * 3600, args.delay_hours * 3600
    weights = {m: 0.9 for m in (*PROVIDERS, "M")}
    known = {
        "default": TrustPolicy(GROUP, SIGNERS, weights),
        "partner": TrustPolicy(GROUP, SIGNERS, weights, corroboration=1),
        "members-only": TrustPolicy(GROUP, SIGNERS, weights, local_min_score=None),
    }
    if args.local_min_score is not None:
        bar = args.local_min_score
        known["default"] = TrustPolicy(GROUP, SIGNERS, weights, local_min_score=bar)
    policies = {n: known[n] for n in args.policies.split(",")}
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    base = {p: score(world, p, run(world, p, [], None)[0]) for p in PROVIDERS}
    results["without"] = {
        p: {k: v for k, v in s.items() if k not in INTERNAL} for p, s in base.items()
    }
    for p in PROVIDERS:  # what sharing could reach: campaigns another provider acts on at all
        elsewhere = {c for q in PROVIDERS if q != p for c in base[q]["first_action"]}
        reach = sum(n for c, n in base[p]["campaign_leakage"].items() if c in elsewhere)
        total = base[p]["leakage"]
        results["without"][p]["leakage_in_campaigns_acted_on_elsewhere"] = (
            round(reach / total, 4) if total else None
        )
    for name, trust in policies.items():
        shared: list[Bundle] = []
        got: dict[str, dict[str, Any]] = {}
        for p in PROVIDERS:
            engine, published = run(world, p, list(shared), trust, pub, delay, args.share_monitored)
            got[p] = score(world, p, engine)
            shared += published
        bad = {
            p: score(world, p, run(world, p, [*shared, malicious(world, p)], trust)[0])
            for p in ("B", "C")
        }
        results[name] = {
            p: {
                **{k: v for k, v in got[p].items() if k not in INTERNAL},
                "leakage_cut": round(1 - got[p]["leakage"] / base[p]["leakage"], 4)
                if base[p]["leakage"]
                else None,
                "hours_from_A_first_action": hours_after(
                    got["A"]["first_action"], got[p]["first_action"]
                ),
                "hours_from_A_first_action_without": hours_after(
                    base["A"]["first_action"], base[p]["first_action"]
                ),
            }
            for p in PROVIDERS
        }
        results[name]["malicious_member_fpr"] = {p: round(bad[p]["fpr"], 5) for p in bad}
        results[name]["bundles"] = len(shared)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
