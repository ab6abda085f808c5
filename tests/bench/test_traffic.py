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
from distillwatch.bench.world import (
    AGENT_TEMPLATES,
    CODE_TEMPLATES,
    NEW_MODEL,
    REASONING_TEMPLATES,
    REWRITE_TEMPLATES,
    RUBRIC_TEMPLATES,
    TASK_TEMPLATES,
    USER_AGENTS,
    Network,
)
from distillwatch.errors import ConfigError
from distillwatch.log import read_accounts, read_exchanges, read_labels
from distillwatch.records import Account, Exchange, Label

# The leak audit runs on several seeds: a value that reaches attack traffic but only rarely
# legitimate traffic would pass on one seed by luck and fail on another.
SEEDS = (11, 12, 13)
START = DEMO.start
# Many accounts with modest volume: the leak audit compares value *sets*, so every legitimate
# profile needs enough accounts to show the range of what it does.
AUDIT = Scenario(
    "audit",
    (
        Population("chat", 120),
        Population("developer", 250),
        Population("app-backend", 3, {"per_day": 400.0}),
        Population("enterprise-eval", 5, {"problems": 40}),
        Population("cron", 12),
        Population("nat-group", 20, {"group_size": 10}),
        Population("vpn-user", 20),
        Population("researcher", 6, {"per_day": 150.0}),
        Population("cot-harvest-hydra", 40, {"pivot_within_h": 12.0}),
        Population("low-and-slow", 8),
        Population("capability-sweep", 3, {"per_account_per_day": 100.0}),
        Population("reseller", 1, {"end_users": 30, "extraction_per_day": 200.0}),
        Population("naive-scraper", 2, {"per_day": 800.0}),
    ),
    start=START,
    days=1.0,
    release_after_days=0.4,
)


@dataclass
class Log:
    seed: int
    exchanges: list[Exchange]
    accounts: dict[str, Account]
    labels: dict[str, Label]
    path: Path

    def by_label(self, label: str) -> Iterator[Exchange]:
        return (e for e in self.exchanges if self.labels[e.account_id].label == label)

    def by_profile(self, profile: str) -> list[Exchange]:
        return [e for e in self.exchanges if self.labels[e.account_id].profile == profile]

    def accounts_of(self, profile: str) -> list[str]:
        return [aid for aid, lb in self.labels.items() if lb.profile == profile]


def _generate(out: Path, scenario: Scenario, seed: int, **kw: Any) -> Log:
    gen = generate(out, scenario=scenario, seed=seed, use_shared_data=False, **kw)
    exchanges = [e for b in read_exchanges(gen.exchanges_path) for e in b]
    assert len(exchanges) == gen.exchanges
    return Log(seed, exchanges, read_accounts(gen.accounts_path), read_labels(gen.labels_path), out)


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def audit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Log:
    return _generate(tmp_path_factory.mktemp("audit"), AUDIT, request.param)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return _generate(tmp_path_factory.mktemp("traffic"), AUDIT, SEEDS[0])


def test_every_profile_is_present_and_labelled(log: Log) -> None:
    assert set(log.labels) == set(log.accounts)
    assert {lb.profile for lb in log.labels.values()} == set(PROFILES)
    for lb in log.labels.values():
        assert (lb.campaign_id is not None) == (lb.label == "attack")
        assert lb.label == PROFILES[lb.profile or ""].label
    assert {e.account_id for e in log.exchanges} <= set(log.accounts)
    assert {lb.profile for lb in log.labels.values() if lb.label == "attack"} == {
        p.id for p in PROFILES.values() if p.label == "attack"
    }
    active = {log.labels[e.account_id].profile for e in log.exchanges}
    assert active == set(PROFILES)


def test_campaign_ids(log: Log) -> None:
    """One id per coordinated campaign; the scraper and each reseller are their own."""
    camps: defaultdict[str, set[str]] = defaultdict(set)
    for lb in log.labels.values():
        if lb.campaign_id is not None:
            camps[lb.profile or ""].add(lb.campaign_id)
    for profile in ("cot-harvest-hydra", "low-and-slow", "capability-sweep"):
        assert len(camps[profile]) == 1, profile
    assert len(camps["naive-scraper"]) == len(log.accounts_of("naive-scraper"))
    assert len(camps["reseller"]) == len(log.accounts_of("reseller"))
    everyone = [c for cs in camps.values() for c in cs]
    assert len(everyone) == len(set(everyone))


def test_log_is_in_time_order_with_unique_ids(log: Log) -> None:
    keys = [(e.ts, e.id) for e in log.exchanges]
    assert keys == sorted(keys)
    assert len({e.id for e in log.exchanges}) == len(log.exchanges)
    assert all(START <= e.ts < START + timedelta(days=1) for e in log.exchanges)


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
    assert a.accounts_path.read_bytes() == b.accounts_path.read_bytes()


# --- the leak audit: nothing in the metadata may name the label by itself -----------------


def _shape(e: Exchange) -> dict[str, Any]:
    """Every categorical piece of an exchange's metadata (no prompt text)."""
    req = e.request or {}
    messages = req.get("messages", [])
    return {
        "user_agent": e.user_agent,
        "client": next(k for k, uas in USER_AGENTS.items() if e.user_agent in uas),
        "model": e.model,
        "endpoint": e.endpoint,
        "status": e.status,
        "request keys": tuple(sorted(req)),
        "roles": tuple(m["role"] for m in messages[:1]),
        "system prompt": messages[0]["content"] if messages[0]["role"] == "system" else None,
        "temperature": req.get("temperature"),
        "max_tokens": req.get("max_tokens"),
        "n": req.get("n"),
        "stream": req.get("stream"),
        "response_format": str(req.get("response_format")),
        "id format": (e.id[:3], len(e.id)),
        "account format": (e.account_id[:5], len(e.account_id)),
        "reasoning tokens given": e.reasoning_tokens is not None,
    }


def _tools(e: Exchange) -> set[str]:
    return {msgspec.json.encode(t).decode() for t in (e.request or {}).get("tools", [])}


# pairs of fields a client sets together: a combination only attackers produce (a chat app's
# user agent with an API script's parameters) would name the label as surely as one value
PAIRS = (("client", "request keys"), ("roles", "request keys"), ("client", "model"))


def _shape_and_pairs(e: Exchange) -> dict[str, Any]:
    shape = _shape(e)
    return {**shape, **{f"{a} & {b}": (shape[a], shape[b]) for a, b in PAIRS}}


def test_attack_metadata_values_all_occur_in_legit_traffic(audit: Log) -> None:
    legit: defaultdict[str, set[Any]] = defaultdict(set)
    legit_tools: set[str] = set()
    for e in audit.by_label("legit"):
        for k, v in _shape_and_pairs(e).items():
            legit[k].add(v)
        legit_tools |= _tools(e)
    for e in audit.by_label("attack"):
        profile = audit.labels[e.account_id].profile
        for k, v in _shape_and_pairs(e).items():
            assert v in legit[k], f"seed {audit.seed}: {k}={v!r} only in attack traffic ({profile})"
        assert _tools(e) <= legit_tools, f"seed {audit.seed}: a tool only attackers define"


_FAMILIES = {
    "rubric": RUBRIC_TEMPLATES,
    "rewrite": REWRITE_TEMPLATES,
    "reasoning": REASONING_TEMPLATES,
    "agent": AGENT_TEMPLATES,
    "code": CODE_TEMPLATES,
    "task": TASK_TEMPLATES,
}
# each template's fixed text, most specific first
_MARKERS = sorted(
    (
        (max(tpl.split("{q}"), key=len).strip(), (family, i))
        for family, templates in _FAMILIES.items()
        for i, tpl in enumerate(templates)
        if tpl != "{q}"
    ),
    key=lambda m: -len(m[0]),
)


def _template(text: str) -> tuple[str, int] | None:
    """Which shared template a prompt was wrapped in (family, index), by its fixed text."""
    return next((t for marker, t in _MARKERS if marker in text), None)


def _family(text: str) -> str | None:
    t = _template(text)
    return t[0] if t else None


def _last(e: Exchange) -> str:
    return str(e.request["messages"][-1]["content"]) if e.request else ""


def test_every_template_attackers_use_legit_accounts_use_too(audit: Log) -> None:
    legit = {_template(_last(e)) for e in audit.by_label("legit")}
    attack = {_template(_last(e)) for e in audit.by_label("attack")}
    assert {t[0] for t in attack if t} == set(_FAMILIES)
    assert attack <= legit, f"seed {audit.seed}: only attackers use {attack - legit}"


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


def test_attackers_use_only_address_pools_legit_customers_use_too(audit: Log) -> None:
    network = Network(audit.seed)
    legit = {_pool(network, ip) for ip in {e.ip for e in audit.by_label("legit")}}
    attack = {_pool(network, ip) for ip in {e.ip for e in audit.by_label("attack")}}
    assert attack <= legit
    assert legit == {"residential", "residential6", "mobile", "datacenter"}


def test_token_counts_and_latency_ranges_overlap(audit: Log) -> None:
    for field in ("prompt_tokens", "completion_tokens", "latency_ms"):
        legit = sorted(getattr(e, field) or 0 for e in audit.by_label("legit"))
        attack = sorted(getattr(e, field) or 0 for e in audit.by_label("attack"))
        # the attack's middle half lies inside the legit range: no threshold separates them
        lo, hi = attack[len(attack) // 4], attack[3 * len(attack) // 4]
        assert legit[0] <= lo and hi <= legit[-1], field


def test_account_metadata_values_all_occur_for_legit_accounts(audit: Log) -> None:
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
            "email tld": (a.email_domain or "").rsplit(".", 1)[-1],
            "org": a.org_id is not None,
            "payment format": ((a.payment_fingerprint or "")[:3], len(a.payment_fingerprint or "")),
        }

    legit: defaultdict[str, set[Any]] = defaultdict(set)
    kinds = {aid: lb.label for aid, lb in audit.labels.items()}
    for aid, a in audit.accounts.items():
        if kinds[aid] == "legit":
            for k, v in shape(a).items():
                legit[k].add(v)
    newest_legit = max(
        a.created_at for aid, a in audit.accounts.items() if kinds[aid] == "legit" and a.created_at
    )
    for aid, a in audit.accounts.items():
        if kinds[aid] == "attack":
            for k, v in shape(a).items():
                assert v in legit[k], f"{k}={v!r} occurs only on attack accounts"
            assert a.created_at is not None
    # some legitimate accounts are as new as the attackers' (sign-up recency is a signal,
    # not a label)
    assert newest_legit > START - timedelta(days=5)


def test_legit_traffic_does_not_repeat_one_prompt_across_many_accounts(audit: Log) -> None:
    senders: defaultdict[str, set[str]] = defaultdict(set)
    for e in audit.by_label("legit"):
        if e.request and len(e.request["messages"]) <= 2:  # first turns only
            senders[e.request["messages"][-1]["content"]].add(e.account_id)
    legit_accounts = sum(lb.label == "legit" for lb in audit.labels.values())
    assert max(len(a) for a in senders.values()) < 0.1 * legit_accounts


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
    hydra = log.accounts_of("cot-harvest-hydra")
    payments = {log.accounts[a].payment_fingerprint for a in hydra}
    assert len(payments) < len(hydra)
    signups = sorted(t for a in hydra if (t := log.accounts[a].created_at) is not None)
    assert signups[-1] - signups[0] <= timedelta(hours=6)  # opened in one burst
    per_account = defaultdict(set)
    for e in log.by_profile("cot-harvest-hydra"):
        per_account[e.account_id].add(e.ip)
    counts = Counter(e.account_id for e in log.by_profile("cot-harvest-hydra"))
    assert all(len(per_account[a]) > 0.8 * counts[a] for a in counts)
    # light per account, as the public reports describe (about 26 a day)
    assert 15 <= sum(counts.values()) / len(hydra) <= 40


def test_hydra_pivots_to_the_new_model_within_a_day(log: Log) -> None:
    release = START + timedelta(days=AUDIT.release_after_days)
    hydra = log.by_profile("cot-harvest-hydra")
    first = min(e.ts for e in hydra if e.model == NEW_MODEL)
    assert release <= first <= release + timedelta(hours=24)
    after = [e for e in hydra if e.ts > first]
    assert 0.25 < sum(e.model == NEW_MODEL for e in after) / len(after) < 0.75


def test_nat_group_shares_one_address_an_org_and_a_signup_day(log: Log) -> None:
    members = log.accounts_of("nat-group")
    orgs = Counter(log.accounts[a].org_id for a in members)
    assert len(orgs) == 2 and set(orgs.values()) == {10}
    for org in orgs:
        group = [a for a in members if log.accounts[a].org_id == org]
        assert len({log.accounts[a].email_domain for a in group}) == 1
        days = {log.accounts[a].created_at.date() for a in group}  # type: ignore[union-attr]
        assert len(days) <= 2  # one afternoon, maybe across midnight UTC
        ips = Counter(e.ip for e in log.exchanges if e.account_id in group)
        shared, n = ips.most_common(1)[0]
        users = {e.account_id for e in log.exchanges if e.ip == shared}
        assert users <= set(group) and len(users) >= 6  # many accounts, one address
        hours = Counter(e.ts.hour for e in log.exchanges if e.ip == shared)
        assert hours.most_common(1)[0][1] > 0.2 * n  # together, at the same hour


def test_vpn_users_change_address_every_session(log: Log) -> None:
    network = Network(log.seed)
    ips: defaultdict[str, list[str]] = defaultdict(list)
    for e in log.by_profile("vpn-user"):
        if len((e.request or {}).get("messages", [])) == 1:  # a session's first turn
            ips[e.account_id].append(e.ip)
    sessions = sum(len(v) for v in ips.values())
    distinct = sum(len(set(v)) for v in ips.values())
    assert distinct > 0.8 * sessions
    pools = Counter(_pool(network, ip) for v in ips.values() for ip in v)
    assert pools["datacenter"] > 0.7 * sessions


def test_researchers_demand_reasoning_and_judge(log: Log) -> None:
    texts = [_last(e) for e in log.by_profile("researcher")]
    fams = Counter(_family(t) for t in texts)
    assert fams["reasoning"] + fams["rubric"] > 0.3 * len(texts)
    assert {log.accounts[a].tier for a in log.accounts_of("researcher")} == {"research"}


def test_low_and_slow_accounts_stay_under_their_rate_limit(log: Log) -> None:
    per_hour: Counter[tuple[str, int]] = Counter()
    for e in log.by_profile("low-and-slow"):
        per_hour[(e.account_id, int(e.ts.timestamp() // 3600))] += 1
    assert max(per_hour.values()) <= 20
    accounts = log.accounts_of("low-and-slow")
    assert len({log.accounts[a].payment_fingerprint for a in accounts}) == len(accounts)
    ips = {e.ip for e in log.by_profile("low-and-slow")}
    assert len(ips) < len(log.by_profile("low-and-slow")) / 3  # sticky addresses


def test_capability_sweep_walks_every_tool_domain(log: Log) -> None:
    sweep = log.by_profile("capability-sweep")
    with_tools = [e for e in sweep if e.request and "tools" in e.request]
    assert 0.5 < len(with_tools) / len(sweep) < 0.9
    names = {t["function"]["name"] for e in with_tools for t in e.request["tools"]}  # type: ignore[index]
    assert {"run_python", "sql_query", "search_web", "get_weather", "lookup_order"} <= names


def test_reseller_mixes_end_user_chat_with_extraction(log: Log) -> None:
    assert len(log.accounts_of("reseller")) == 1
    mine = log.by_profile("reseller")
    multi = sum(len(e.request["messages"]) > 2 for e in mine if e.request)
    reasoning = sum(_family(_last(e)) == "reasoning" for e in mine)
    assert multi > 0 and reasoning > 0.3 * len(mine)
    assert len({e.ip for e in mine}) <= 3


def test_cron_runs_on_a_fixed_period(log: Log) -> None:
    by_account: defaultdict[str, list[float]] = defaultdict(list)
    for e in log.by_profile("cron"):
        by_account[e.account_id].append(e.ts.timestamp())
    for ts in by_account.values():
        starts = [b for a, b in itertools.pairwise(ts) if b - a > 30]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        if len(gaps) > 3:
            assert max(gaps) - min(gaps) < 10


# --- evasion knobs ------------------------------------------------------------------------


def test_hydra_evasion_knobs_change_what_it_looks_like(tmp_path: Path) -> None:
    knobs = {
        "ip_strategy": "sticky-residential",
        "timing": "diurnal",
        "camouflage": 0.5,
        "variation": 1.0,
        "signup_spread_h": 480.0,
        "accounts_per_card": 1.0,
    }
    sc = Scenario("evasive", (Population("cot-harvest-hydra", 30, knobs),), start=START, days=2)
    out = _generate(tmp_path, sc, 3)
    accounts = list(out.accounts.values())
    assert len({a.payment_fingerprint for a in accounts}) == len(accounts)
    signups = sorted(a.created_at for a in accounts if a.created_at is not None)
    assert signups[-1] - signups[0] > timedelta(days=5)
    ips = {e.ip for e in out.exchanges}
    assert len(ips) < len(out.exchanges) / 4
    hours = Counter(e.ts.hour for e in out.exchanges)
    assert max(hours.values()) > 4 * min(hours.get(h, 0) for h in range(24))  # a daily rhythm
    chat = sum(_family(_last(e)) is None for e in out.exchanges)
    assert chat > 0.3 * len(out.exchanges)


def test_datacenter_strategy_uses_datacenter_addresses(tmp_path: Path) -> None:
    knobs = {"ip_strategy": "datacenter"}
    sc = Scenario("dc", (Population("cot-harvest-hydra", 10, knobs),), start=START, days=0.5)
    out = _generate(tmp_path, sc, 4)
    network = Network(4)
    assert {_pool(network, e.ip) for e in out.exchanges} == {"datacenter"}


def test_streams_are_lazy(tmp_path: Path) -> None:
    """Building a year of traffic costs nothing until it is read (memory O(accounts))."""
    import random

    from distillwatch.bench.population import Context, Prompts
    from distillwatch.bench.sources import load_traces
    from distillwatch.bench.world import TokenModel, World

    world = World(
        seed=1,
        start=START,
        end=START + timedelta(days=365),
        tokens=TokenModel(load_traces(None)),
        release_at=START + timedelta(days=100),
    )
    prompts = Prompts.from_pools(load_pools(None))
    for profile in PROFILES.values():
        ctx = Context(world, prompts, random.Random(1), profile.id)
        cohort = profile.build(ctx, 3)
        assert cohort.accounts and cohort.streams
        first = [next(s, None) for s in cohort.streams]
        assert any(first), profile.id


def test_bad_scenarios_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        generate(tmp_path, scenario=Scenario("x", (Population("nope", 1),)), use_shared_data=False)
    bad_knob = Scenario("x", (Population("chat", 1, {"sessions": 3}),))
    with pytest.raises(ConfigError, match="chat"):
        generate(tmp_path, scenario=bad_knob, use_shared_data=False)
    with pytest.raises(ConfigError, match="scale"):
        generate(tmp_path, scale=0, use_shared_data=False)
    with pytest.raises(ConfigError, match="split"):
        generate(tmp_path, split="train", use_shared_data=False)
    twice = Scenario("x", (Population("chat", 1), Population("chat", 2)))
    with pytest.raises(ConfigError, match="used twice"):
        generate(tmp_path, scenario=twice, use_shared_data=False)


def test_shared_data_has_every_manifest_source() -> None:
    data = find_data_dir()
    if data is None:
        pytest.skip("shared/data is not here")
    pools = load_pools(data)
    assert {"sharegpt", "gsm8k", "hh-rlhf", "humaneval"} <= set(pools)
    assert all(c.turns[0].strip() for cs in pools.values() for c in cs)
