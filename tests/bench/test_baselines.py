"""Baselines: exact rate limits, causal replay, PRADA and MMD on constructed accounts."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import msgspec
import numpy as np
import pytest

from distillwatch.bench.baselines import (
    BASELINES,
    Baseline,
    Limit,
    MmdBaseline,
    PradaBaseline,
    PromptEmbedder,
    RateLimitBaseline,
    ReplayOrderError,
    create_baseline,
    run_baseline,
)
from distillwatch.bench.sources import load_pools
from distillwatch.errors import ConfigError
from distillwatch.records import Account, Action, Exchange, Verdict
from tests.factories import T0, exchange

CHAT_SOURCES = ("oasst", "hh-rlhf", "koala", "vicuna", "mt-bench")
DEV_ACCOUNTS, DEV_PROMPTS = 24, 35


# -- data -----------------------------------------------------------------------------------


def _chat() -> list[str]:
    pools = load_pools(None)
    texts = [c.turns[0] for s in CHAT_SOURCES for c in pools[s]]
    random.Random(3).shuffle(texts)
    return texts


CHAT = _chat()
HELD_OUT = CHAT[DEV_ACCOUNTS * DEV_PROMPTS :]  # never seen in calibration
MATH = [c.turns[0] for c in load_pools(None)["gsm8k"]]
SEEDS = [c.turns[0] for c in load_pools(None)["self-instruct"]]


def benign_dev() -> list[Exchange]:
    """Legitimate development traffic: chit-chat from many accounts, in time order."""
    out = [
        exchange(j, account=f"dev-{a:02d}", seconds=60.0 * j + a, text=CHAT[a * DEV_PROMPTS + j])
        for a in range(DEV_ACCOUNTS)
        for j in range(DEV_PROMPTS)
    ]
    return sorted(out, key=lambda e: (e.ts, e.id))


def perturbed(n_seeds: int, per_seed: int, seed: int = 9) -> list[str]:
    """Synthetic queries as PRADA's attackers make them: seeds, each with small perturbations."""
    rng = random.Random(seed)
    swaps = ["quickly", "two", "blue", "apples", "seven", "the", "carefully"]
    out: list[str] = []
    for s in SEEDS[:n_seeds]:
        out.append(s)
        words = s.split()
        for _ in range(per_seed):
            w = list(words)
            w[rng.randrange(len(w))] = rng.choice(swaps)
            out.append(" ".join(w))
    return out


def stream(
    account: str, texts: list[str], *, gap: float = 30.0, start: float = 0.0
) -> list[Exchange]:
    return [
        exchange(j, account=account, seconds=start + gap * j, text=t) for j, t in enumerate(texts)
    ]


def merged(*streams: list[Exchange]) -> list[Exchange]:
    return sorted((e for s in streams for e in s), key=lambda e: (e.ts, e.id))


def by_account(verdicts: list[Verdict]) -> dict[str, Verdict]:
    return {v.account_id: v for v in verdicts}


def valid(v: Verdict) -> Verdict:
    """Round-trip through the spec's constraints (score in [0, 1], aware times, counts ≥ 0)."""
    return msgspec.convert(msgspec.to_builtins(v), Verdict)


@pytest.fixture(scope="module")
def prada() -> Callable[[], PradaBaseline]:
    def make() -> PradaBaseline:
        base = PradaBaseline(min_calibration_accounts=10)
        base.calibrate(iter(benign_dev()))
        return base

    return make


@pytest.fixture(scope="module")
def mmd() -> Callable[[], MmdBaseline]:
    def make() -> MmdBaseline:
        base = MmdBaseline(min_calibration_accounts=5)
        base.calibrate(iter(benign_dev()))
        return base

    return make


# -- rate limit -----------------------------------------------------------------------------


def test_rate_limit_flags_the_request_over_the_minute_limit_exactly() -> None:
    log = [exchange(i, account="burst", seconds=i) for i in range(25)]
    log[3] = exchange(3, account="burst", seconds=3, status=503)  # not served
    [v] = run_baseline(RateLimitBaseline(), [log])
    assert v.first_action_ts == T0 + timedelta(seconds=20)  # the 21st request in a minute
    assert v.exchanges_before_action == 20  # 21 requests, one of them not served
    assert v.action is Action.BLOCK and v.score == 1.0
    assert "20/minute" in v.reasons[0] and "5 of 25 requests" in v.reasons[0]


def test_rate_limit_keeps_the_first_action_after_the_account_calms_down() -> None:
    burst = [exchange(i, account="a", seconds=0.5 * i) for i in range(30)]
    later = exchange(30, account="a", seconds=86_400.0 * 2)
    [v] = run_baseline(RateLimitBaseline(), [burst, [later]])
    assert v.action is Action.ALLOW  # not over any limit at the end of the log
    assert v.first_action_ts == T0 + timedelta(seconds=10) and v.exchanges_before_action == 21
    assert v.score == 1.0  # peak utilisation


def test_rate_limit_window_slides_exactly() -> None:
    # 20 requests at 0..19 s; at 60 s the first one has left the window, at 59.5 s it has not
    base = [exchange(i, account="a", seconds=i) for i in range(20)]
    late = run_baseline(RateLimitBaseline(), [[*base, exchange(20, account="a", seconds=60)]])
    early = run_baseline(RateLimitBaseline(), [[*base, exchange(20, account="a", seconds=59.5)]])
    assert late[0].first_action_ts is None and late[0].action is Action.ALLOW
    assert early[0].first_action_ts == T0 + timedelta(seconds=59.5)
    assert early[0].exchanges_before_action == 21


def test_rate_limit_daily_limit_and_tiers() -> None:
    steady = [exchange(i, account="free", seconds=4.0 * i) for i in range(302)]  # 15/minute
    [v] = run_baseline(RateLimitBaseline(), [steady])
    assert v.first_action_ts == T0 + timedelta(seconds=4.0 * 300)  # the 301st of the day
    assert v.exchanges_before_action == 301

    paid = {"busy": Account(account_id="busy", tier="paid")}
    busy = [exchange(i, account="busy", seconds=1.5 * i) for i in range(1200)]  # 40/minute
    [v] = run_baseline(RateLimitBaseline(paid), [busy])
    assert v.first_action_ts is None and v.action is Action.ALLOW
    assert v.exchanges_before_action is None
    assert "paid" in v.reasons[0] and "never over" in v.reasons[0]
    assert 0.0 < v.score <= 1.0


def test_rate_limit_never_flags_an_account_under_its_limits() -> None:
    # 19 requests in each of 15 minutes: 285 a day, under 20/minute and 300/day
    log = [
        exchange(m * 19 + k, account="calm", seconds=60.0 * m + 3.0 * k)
        for m in range(15)
        for k in range(19)
    ]
    base = RateLimitBaseline()
    assert not any(o.flagged for o in base.observe_batch(log))
    assert not base.flagged("calm")


def test_rate_limit_unknown_tier_is_free_and_limits_are_validated() -> None:
    accounts = {"x": Account(account_id="x", tier="platinum")}
    log = [exchange(i, account="x", seconds=0.1 * i) for i in range(21)]
    [v] = run_baseline(RateLimitBaseline(accounts), [log])
    assert v.exchanges_before_action == 21 and "platinum (unknown, as free)" in v.reasons[0]
    with pytest.raises(ConfigError):
        RateLimitBaseline(limits={"paid": Limit(60, 5000)})
    with pytest.raises(ConfigError):
        RateLimitBaseline(limits={"free": Limit(0, 5000)})


# -- PRADA ----------------------------------------------------------------------------------


def test_prada_calibrates_delta_on_benign_accounts(prada: Callable[[], PradaBaseline]) -> None:
    base = prada()
    assert base.calibration.accounts >= 10
    assert "benign accounts fall below it" in base.calibration.source
    assert 0.5 < base.delta < 1.0


def test_prada_flags_near_duplicate_synthetic_queries_not_natural_ones(
    prada: Callable[[], PradaBaseline],
) -> None:
    base = prada()
    attacker = stream("attacker", perturbed(30, 4))
    natural = stream("natural", HELD_OUT[:60], start=7.0)
    verdicts = by_account(run_baseline(base, [merged(attacker, natural)]))
    att, nat = verdicts["attacker"], verdicts["natural"]
    assert att.action is Action.BLOCK and att.first_action_ts is not None
    assert att.exchanges_before_action == base.min_distances + 1  # flagged at the first test
    assert att.score > 0.5 and "Shapiro-Wilk" in att.reasons[0] and "<" in att.reasons[0]
    assert nat.action is Action.ALLOW and nat.first_action_ts is None
    assert nat.score < 0.5 and "≥" in nat.reasons[0]


def test_prada_waits_for_enough_distances(prada: Callable[[], PradaBaseline]) -> None:
    base = prada()
    [v] = run_baseline(base, [stream("new", perturbed(3, 4))])  # 15 prompts, 14 distances
    assert v.score == 0.0 and v.first_action_ts is None
    assert "14 nearest-prompt distances so far" in v.reasons[0]


def test_prada_without_calibration_uses_the_fixed_delta() -> None:
    base = PradaBaseline()
    base.calibrate(iter(benign_dev()[:50]))  # too few accounts reach 30 distances
    assert base.delta == 0.95 and base.calibration.source.startswith("fixed")


# -- MMD ------------------------------------------------------------------------------------


def test_mmd_flags_another_distribution_not_a_benign_account(
    mmd: Callable[[], MmdBaseline],
) -> None:
    base = mmd()
    assert base.calibration is not None and base.calibration.level == "account"
    math_account = stream("math", MATH[:48])
    benign = stream("chatty", HELD_OUT[:48], start=5.0)
    verdicts = by_account(run_baseline(base, [merged(math_account, benign)]))
    flagged, calm = verdicts["math"], verdicts["chatty"]
    assert flagged.action is Action.BLOCK and flagged.score > 0.5
    assert flagged.exchanges_before_action == base.window  # decided at the first full window
    assert flagged.first_action_ts == T0 + timedelta(seconds=30.0 * (base.window - 1))
    assert "MMD²" in flagged.reasons[0] and ">" in flagged.reasons[0]
    assert calm.action is Action.ALLOW and calm.first_action_ts is None and calm.score < 0.5


def test_mmd_window_level_threshold_and_missing_calibration() -> None:
    base = MmdBaseline(level="window")
    base.calibrate(iter(benign_dev()))
    assert base.calibration is not None and base.calibration.level == "window"
    assert base.calibration.windows > base.random_windows

    uncalibrated = MmdBaseline()
    [v] = run_baseline(uncalibrated, [stream("math", MATH[:40])])
    assert v.action is Action.ALLOW and v.score == 0.0
    assert "MMD cannot run" in v.reasons[0]

    starved = MmdBaseline()
    starved.calibrate(iter([exchange(i, account="d", text=None) for i in range(100)]))
    assert starved.calibration is None


# -- the contract, for every baseline -------------------------------------------------------


def _attack_log() -> list[Exchange]:
    """Accounts that every baseline ends up flagging, and ones it does not."""
    burst = [exchange(i, account="burst", seconds=200.0 + 0.5 * i) for i in range(40)]
    return merged(
        stream("attacker", perturbed(20, 4)),
        stream("math", MATH[:64], start=3.0),
        stream("natural", HELD_OUT[:50], start=7.0),
        burst,
    )


def _make(
    name: str, prada: Callable[[], PradaBaseline], mmd: Callable[[], MmdBaseline]
) -> Baseline:
    if name == "prada":
        return prada()
    if name == "mmd":
        return mmd()
    return create_baseline(name)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_replay_is_causal(
    name: str, prada: Callable[[], PradaBaseline], mmd: Callable[[], MmdBaseline]
) -> None:
    log = _attack_log()
    full = by_account(run_baseline(_make(name, prada, mmd), [log]))
    assert any(v.first_action_ts is not None for v in full.values())
    for cut in (len(log) // 3, len(log) // 2, 2 * len(log) // 3):
        prefix = by_account(run_baseline(_make(name, prada, mmd), [log[:cut]]))
        for account, early in prefix.items():
            if early.first_action_ts is not None:  # later exchanges cannot move a decision
                assert full[account].first_action_ts == early.first_action_ts
                assert full[account].exchanges_before_action == early.exchanges_before_action
            else:  # nor make one earlier than the prefix's end
                first = full[account].first_action_ts
                assert first is None or first > log[cut - 1].ts


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_batching_does_not_change_decisions(
    name: str, prada: Callable[[], PradaBaseline], mmd: Callable[[], MmdBaseline]
) -> None:
    log = _attack_log()
    whole = by_account(run_baseline(_make(name, prada, mmd), [log]))
    pieces = [log[i : i + 7] for i in range(0, len(log), 7)]
    chunked = by_account(run_baseline(_make(name, prada, mmd), pieces))
    for account, v in whole.items():
        w = chunked[account]
        assert (w.first_action_ts, w.exchanges_before_action, w.action) == (
            v.first_action_ts,
            v.exchanges_before_action,
            v.action,
        )
        assert w.score == pytest.approx(v.score, abs=1e-6)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_verdicts_follow_the_spec(
    name: str, prada: Callable[[], PradaBaseline], mmd: Callable[[], MmdBaseline]
) -> None:
    verdicts = run_baseline(_make(name, prada, mmd), [_attack_log()], accounts=["idle", "burst"])
    assert len(verdicts) == len({v.account_id for v in verdicts}) == 5
    for v in verdicts:
        assert valid(v) == v
        assert len(v.reasons) <= 1
        assert (v.first_action_ts is None) == (v.exchanges_before_action is None)
    idle = by_account(verdicts)["idle"]
    assert idle.action is Action.ALLOW and idle.score == 0.0 and idle.first_action_ts is None


@pytest.mark.parametrize("name", ["prada", "mmd"])
def test_metadata_only_exchanges_are_skipped_with_a_reason(
    name: str, prada: Callable[[], PradaBaseline], mmd: Callable[[], MmdBaseline]
) -> None:
    label = {"prada": "PRADA", "mmd": "MMD"}[name]
    base = _make(name, prada, mmd)
    bare = [exchange(i, account="bare", text=None) for i in range(60)]
    blank = [exchange(i, account="blank", seconds=i + 0.5, text="   ") for i in range(5)]
    mixed = stream("mixed", MATH[:40], start=0.25)
    mixed[5] = exchange(5, account="mixed", seconds=150.25, text=None)
    verdicts = by_account(run_baseline(base, [merged(bare, blank, mixed)]))
    for account in ("bare", "blank"):
        v = verdicts[account]
        assert v.reasons == [f"no prompt text: {label} cannot run"]
        assert v.score == 0.0 and v.action is Action.ALLOW
    assert "1 of 40 exchanges had no prompt text" in verdicts["mixed"].reasons[0]
    # the rate limiter needs no text
    [v] = run_baseline(create_baseline("rate-limit"), [bare])
    assert v.exchanges_before_action == 21


def test_driver_refuses_a_log_out_of_time_order() -> None:
    log = [exchange(1, seconds=10), exchange(2, seconds=5)]
    with pytest.raises(ReplayOrderError, match="time order"):
        run_baseline(RateLimitBaseline(), [log])
    with pytest.raises(ReplayOrderError):
        run_baseline(RateLimitBaseline(), [[log[0]], [log[1]]])


def test_registry() -> None:
    assert sorted(BASELINES) == ["mmd", "prada", "rate-limit"]
    accounts = {"a": Account(account_id="a", tier="paid")}
    assert isinstance(create_baseline("rate-limit", accounts=accounts), RateLimitBaseline)
    assert create_baseline("mmd", window=16).window == 16  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown baseline"):
        create_baseline("nope")


# -- the embedding --------------------------------------------------------------------------


def test_embedding_is_deterministic_unit_and_batch_independent() -> None:
    texts = [*HELD_OUT[:20], "", "!!", "a"]
    one, two = PromptEmbedder(), PromptEmbedder()
    v = one.embed(texts)
    assert np.array_equal(v, two.embed(texts))
    assert np.array_equal(v[3:5], one.embed(texts[3:5]))
    norms = np.linalg.norm(v, axis=1)
    assert np.allclose(norms[:20], 1.0, atol=1e-5) and norms[21] == 0.0
    assert one.embed([]).shape == (0, 128)


def test_embedding_keeps_near_duplicates_near() -> None:
    emb = PromptEmbedder()
    a, b, c = emb.embed(
        [
            "Solve: Anna has 12 apples and buys 7 more. How many now?",
            "Solve: Anna has 15 apples and buys 3 more. How many now?",
            "What's a good name for a golden retriever puppy?",
        ]
    )
    assert float(a @ b) > 0.5 > float(a @ c)
