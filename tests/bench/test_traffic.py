"""The traffic generator: spec-conformant, deterministic, and not leaking its labels."""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from distillwatch.bench.sources import find_data_dir, load_pools
from distillwatch.bench.traffic import DEMO, PROFILES, Population, Scenario, generate
from distillwatch.bench.world import Network
from distillwatch.errors import ConfigError
from distillwatch.log import read_accounts, read_exchanges, read_labels
from distillwatch.records import Account, Exchange, Label

SEED = 11
# Many accounts with modest volume: the leak audit compares value *sets*, so every legitimate
# profile needs enough accounts to show the range of what it does.
AUDIT = Scenario(
    "audit",
    (
        Population("chat", 120),
        Population("developer", 60),
        Population("app-backend", 3, {"per_day": 400.0}),
        Population("enterprise-eval", 5, {"problems": 40}),
        Population("cron", 12),
        Population("cot-harvest-hydra", 12),
        Population("naive-scraper", 2, {"per_day": 800.0}),
    ),
)


@dataclass
class Log:
    exchanges: list[Exchange]
    accounts: dict[str, Account]
    labels: dict[str, Label]
    path: Path

    def by_label(self, label: str) -> Iterator[Exchange]:
        return (e for e in self.exchanges if self.labels[e.account_id].label == label)

    def by_profile(self, profile: str) -> list[Exchange]:
        return [e for e in self.exchanges if self.labels[e.account_id].profile == profile]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    out = tmp_path_factory.mktemp("traffic")
    gen = generate(out, scenario=AUDIT, seed=SEED, days=1.0, use_shared_data=False)
    exchanges = [e for b in read_exchanges(gen.exchanges_path) for e in b]
    assert len(exchanges) == gen.exchanges
    return Log(exchanges, read_accounts(gen.accounts_path), read_labels(gen.labels_path), out)


def test_every_profile_is_present_and_labelled(log: Log) -> None:
    assert set(log.labels) == set(log.accounts)
    assert {lb.profile for lb in log.labels.values()} == set(PROFILES)
    for lb in log.labels.values():
        assert (lb.campaign_id is not None) == (lb.label == "attack")
    assert {e.account_id for e in log.exchanges} <= set(log.accounts)


def test_log_is_in_time_order_with_unique_ids(log: Log) -> None:
    keys = [(e.ts, e.id) for e in log.exchanges]
    assert keys == sorted(keys)
    assert len({e.id for e in log.exchanges}) == len(log.exchanges)


def _digest(path: Path) -> str:
    with gzip.open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_same_seed_same_log_other_seed_other_log(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=3, scale=0.05, days=0.5, use_shared_data=False)
    b = generate(tmp_path / "b", seed=3, scale=0.05, days=0.5, use_shared_data=False)
    c = generate(tmp_path / "c", seed=4, scale=0.05, days=0.5, use_shared_data=False)
    assert _digest(a.exchanges_path) == _digest(b.exchanges_path)
    assert _digest(a.exchanges_path) != _digest(c.exchanges_path)
    assert a.labels_path.read_bytes() == b.labels_path.read_bytes()


# --- the leak audit: nothing in the metadata may name the label by itself -----------------


def _shape(e: Exchange) -> dict[str, Any]:
    """Every categorical piece of an exchange's metadata (no prompt text)."""
    req = e.request or {}
    return {
        "user_agent": e.user_agent,
        "model": e.model,
        "endpoint": e.endpoint,
        "status": e.status,
        "request keys": tuple(sorted(req)),
        "roles": tuple(m["role"] for m in req.get("messages", [])[:1]),
        "temperature": req.get("temperature"),
        "max_tokens": req.get("max_tokens"),
        "n": req.get("n"),
        "response_format": str(req.get("response_format")),
        "id format": (e.id[:3], len(e.id)),
        "account format": (e.account_id[:5], len(e.account_id)),
    }


def test_attack_metadata_values_all_occur_in_legit_traffic(log: Log) -> None:
    legit: defaultdict[str, set[Any]] = defaultdict(set)
    for e in log.by_label("legit"):
        for k, v in _shape(e).items():
            legit[k].add(v)
    for e in log.by_label("attack"):
        for k, v in _shape(e).items():
            assert v in legit[k], f"{k}={v!r} occurs only in attack traffic"


def _pool(network: Network, ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    for kind, nets in (
        ("residential", network.residential),
        ("residential6", network.v6),
        ("mobile", network.mobile),
        ("datacenter", network.datacenter),
    ):
        if any(addr in n for n in nets):
            return kind
    raise AssertionError(f"{ip} is in no pool")


def test_attackers_use_only_address_pools_legit_customers_use_too(log: Log) -> None:
    network = Network(SEED)
    legit = {_pool(network, e.ip) for e in log.by_label("legit")}
    attack = {_pool(network, e.ip) for e in log.by_label("attack")}
    assert attack <= legit
    assert legit == {"residential", "residential6", "mobile", "datacenter"}


def test_token_counts_and_latency_ranges_overlap(log: Log) -> None:
    for field in ("prompt_tokens", "completion_tokens", "latency_ms"):
        legit = sorted(getattr(e, field) or 0 for e in log.by_label("legit"))
        attack = sorted(getattr(e, field) or 0 for e in log.by_label("attack"))
        # the attack's middle half lies inside the legit range: no threshold separates them
        lo, hi = attack[len(attack) // 4], attack[3 * len(attack) // 4]
        assert legit[0] <= lo and hi <= legit[-1], field


def test_account_metadata_values_all_occur_for_legit_accounts(log: Log) -> None:
    def shape(a: Account) -> dict[str, Any]:
        return {
            "tier": a.tier,
            "country": a.country,
            "verified": a.verified,
            "consumer email": a.email_domain in {"gmail.com", "outlook.com", "yahoo.com"}
            or (
                (a.email_domain or "").count(".") == 1
                and not (a.email_domain or "").startswith(("app", "corp"))
            ),
            "payment format": (a.payment_fingerprint or "")[:3],
        }

    legit: defaultdict[str, set[Any]] = defaultdict(set)
    kinds = {aid: lb.label for aid, lb in log.labels.items()}
    for aid, a in log.accounts.items():
        if kinds[aid] == "legit":
            for k, v in shape(a).items():
                legit[k].add(v)
    newest_legit = max(
        a.created_at for aid, a in log.accounts.items() if kinds[aid] == "legit" and a.created_at
    )
    for aid, a in log.accounts.items():
        if kinds[aid] == "attack":
            for k, v in shape(a).items():
                assert v in legit[k], f"{k}={v!r} occurs only on attack accounts"
            assert a.created_at is not None and newest_legit is not None
    # some legitimate accounts are as new as the attackers' (sign-up recency is a signal,
    # not a label)
    assert newest_legit is not None and newest_legit > DEMO.start - timedelta(days=5)


# --- the behaviours each profile promises ---------------------------------------------------


def _texts(exchanges: list[Exchange]) -> list[str]:
    return [msgspec.json.encode(e.request["messages"]).decode() for e in exchanges if e.request]


def test_chat_has_multi_turn_sessions(log: Log) -> None:
    turns = [len(e.request["messages"]) for e in log.by_profile("chat") if e.request]
    assert max(turns) >= 3
    assert sum(t > 1 for t in turns) > 0.1 * len(turns)


def test_harvesters_never_resend_a_request(log: Log) -> None:
    harvest = _texts(log.by_profile("cot-harvest-hydra"))
    assert len(set(harvest)) == len(harvest)


def test_evaluators_rerun_a_fixed_suite(tmp_path: Path) -> None:
    knobs = {"problems": 20, "runs_per_day": 4.0}
    sc = Scenario("evals", (Population("enterprise-eval", 2, knobs),))
    gen = generate(tmp_path, scenario=sc, seed=5, days=2, use_shared_data=False)
    exchanges = [e for b in read_exchanges(gen.exchanges_path) for e in b]
    per_account: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for e in exchanges:
        per_account[e.account_id].update(_texts([e]))
    for suite in per_account.values():
        assert len(suite) == 20  # the same 20 problems, nothing else
        assert min(suite.values()) >= 2  # each rerun


def test_hydra_accounts_share_payment_methods_and_rotate_addresses(log: Log) -> None:
    hydra = [aid for aid, lb in log.labels.items() if lb.profile == "cot-harvest-hydra"]
    payments = {log.accounts[a].payment_fingerprint for a in hydra}
    assert len(payments) < len(hydra)
    per_account = defaultdict(set)
    for e in log.by_profile("cot-harvest-hydra"):
        per_account[e.account_id].add(e.ip)
    counts = Counter(e.account_id for e in log.by_profile("cot-harvest-hydra"))
    assert all(len(per_account[a]) > 0.8 * counts[a] for a in counts)


def test_cron_runs_on_a_fixed_period(log: Log) -> None:
    by_account: defaultdict[str, list[float]] = defaultdict(list)
    for e in log.by_profile("cron"):
        by_account[e.account_id].append(e.ts.timestamp())
    for ts in by_account.values():
        starts = [b for a, b in itertools.pairwise(ts) if b - a > 30]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        if len(gaps) > 3:
            assert max(gaps) - min(gaps) < 10


def test_bad_scenarios_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        generate(tmp_path, scenario=Scenario("x", (Population("nope", 1),)), use_shared_data=False)
    bad_knob = Scenario("x", (Population("chat", 1, {"sessions": 3}),))
    with pytest.raises(ConfigError, match="chat"):
        generate(tmp_path, scenario=bad_knob, use_shared_data=False)
    with pytest.raises(ConfigError, match="scale"):
        generate(tmp_path, scale=0, use_shared_data=False)


def test_shared_data_has_every_manifest_source() -> None:
    data = find_data_dir()
    if data is None:
        pytest.skip("shared/data is not here")
    pools = load_pools(data)
    assert {"sharegpt", "gsm8k", "hh-rlhf", "humaneval"} <= set(pools)
    assert all(c.turns[0].strip() for cs in pools.values() for c in cs)
