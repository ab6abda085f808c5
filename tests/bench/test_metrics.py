"""The scorer of ``bench detect``: hand-computed figures on hand-made verdicts and labels."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from distillwatch.bench.metrics import (
    Activity,
    BenchError,
    Metrics,
    activity,
    evaluate,
    leakage_curve,
    quantile,
    recall_at_fpr,
    roc_points,
)
from distillwatch.errors import DistillwatchError
from distillwatch.records import Action, Exchange, Label, Verdict
from tests.factories import exchange

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def act(served: int, first: float = 0.0, exchanges: int | None = None) -> Activity:
    return Activity(
        exchanges=served if exchanges is None else exchanges,
        served=served,
        first_ts=at(first),
        last_ts=at(first + 10_000),
    )


def legit(a: str, profile: str) -> Label:
    return Label(account_id=a, label="legit", profile=profile)


def attack(a: str, profile: str, campaign: str | None) -> Label:
    return Label(account_id=a, label="attack", profile=profile, campaign_id=campaign)


def verdict(a: str, score: float, acted_at: float | None = None, eba: int | None = None) -> Verdict:
    return Verdict(
        account_id=a,
        score=score,
        action=Action.BLOCK if acted_at is not None else Action.ALLOW,
        first_action_ts=None if acted_at is None else at(acted_at),
        exchanges_before_action=eba,
    )


# A world small enough to score by hand.
#   legit  L1 chat 0.10 · L2 chat 0.40 acted (the false positive) · L3 chat 0.40 · L4 dev 0.20
#          L5 dev: no verdict (score 0)
#   attack A1 hydra c1 0.95, acted 100 s after its first exchange, 5 of 20 served leaked
#          A2 hydra c1 0.40 (ties two legit scores), never acted, 10 served
#          A3 hydra c2 0.90, first exchange at 600 s, acted at 3600 s, 12 of 12 leaked
#          A4 scraper, no campaign, 0.30, never acted, 8 served (of 11 exchanges)
#          A5 scraper c3, no verdict, 5 served
#   U1 verdict, active, no label · U2 verdict, no label, no activity · I1 labelled, inactive
LABELS = {
    "L1": legit("L1", "chat"),
    "L2": legit("L2", "chat"),
    "L3": legit("L3", "chat"),
    "L4": legit("L4", "developer"),
    "L5": legit("L5", "developer"),
    "A1": attack("A1", "hydra", "c1"),
    "A2": attack("A2", "hydra", "c1"),
    "A3": attack("A3", "hydra", "c2"),
    "A4": attack("A4", "scraper", None),
    "A5": attack("A5", "scraper", "c3"),
    "I1": attack("I1", "hydra", "c9"),
}
ACTIVITY = {
    "L1": act(50),
    "L2": act(60),
    "L3": act(70),
    "L4": act(80),
    "L5": act(90),
    "A1": act(20, exchanges=22),
    "A2": act(10),
    "A3": act(12, first=600),
    "A4": act(8, exchanges=11),
    "A5": act(5),
    "U1": act(3),
}
VERDICTS = [
    verdict("L1", 0.10),
    verdict("L2", 0.40, acted_at=500, eba=7),
    verdict("L3", 0.40),
    verdict("L4", 0.20),
    verdict("A1", 0.95, acted_at=100, eba=5),
    verdict("A2", 0.40),
    verdict("A3", 0.90, acted_at=3600, eba=12),
    verdict("A4", 0.30),
    verdict("U1", 0.99, acted_at=1, eba=1),
    verdict("U2", 0.99, acted_at=1, eba=1),
    verdict("I1", 0.99, acted_at=1, eba=1),
]


@pytest.fixture(scope="module")
def m() -> Metrics:
    return evaluate(VERDICTS, LABELS, ACTIVITY, system="hand")


def test_accounts_and_rates(m: Metrics) -> None:
    assert m.system == "hand"
    assert (m.legit_accounts, m.attack_accounts) == (5, 5)
    assert (m.legit_acted, m.attack_acted) == (1, 2)
    assert m.fpr == pytest.approx(1 / 5)
    assert m.recall == pytest.approx(2 / 5)


def test_what_is_ignored_is_counted(m: Metrics) -> None:
    assert m.missing_verdicts == 2  # L5, A5: not acted, score 0
    assert m.unlabelled_verdicts == 2  # U1, U2
    assert m.unlabelled_active == 1  # U1
    assert m.inactive_labelled == 1  # I1 (its acted verdict counts nowhere)
    assert m.missing_eba == 0


def test_per_profile(m: Metrics) -> None:
    p = {x.profile: x for x in m.profiles}
    assert [x.profile for x in m.profiles] == ["chat", "developer", "hydra", "scraper"]
    assert (p["chat"].accounts, p["chat"].acted) == (3, 1)
    assert p["chat"].fpr == pytest.approx(1 / 3)
    assert (p["chat"].recall, p["chat"].leakage, p["chat"].leaked) == (None, None, None)
    assert (p["developer"].fpr, p["developer"].missing) == (0.0, 1)
    assert p["hydra"].recall == pytest.approx(2 / 3)
    assert (p["hydra"].served, p["hydra"].leaked) == (42, 5 + 10 + 12)
    assert p["hydra"].leakage == pytest.approx(27 / 42)
    assert p["scraper"].recall == 0.0
    assert p["scraper"].leakage == 1.0
    assert p["scraper"].fpr is None
    assert p["hydra"].exchanges_to_action is not None
    assert p["hydra"].exchanges_to_action.median == 8.5
    assert p["scraper"].seconds_to_action is not None
    assert p["scraper"].seconds_to_action.n == 0


def test_leakage(m: Metrics) -> None:
    assert m.served_attack == 20 + 10 + 12 + 8 + 5
    assert m.leaked_attack == 5 + 10 + 12 + 8 + 5
    assert m.leakage == pytest.approx(40 / 55)


def test_campaigns(m: Metrics) -> None:
    assert (m.campaigns_total, m.campaigns_detected) == (4, 2)
    assert m.campaign_recall == 0.5
    c = {x.campaign_id: x for x in m.campaigns}
    assert sorted(c) == ["c1", "c2", "c3", "solo:A4"]
    assert (c["c1"].detected, c["c1"].accounts, c["c1"].acted, c["c1"].share_acted) == (
        True,
        2,
        1,
        0.5,
    )
    assert (c["c1"].served, c["c1"].leaked, c["c1"].leakage) == (30, 15, 0.5)
    assert c["c1"].first_action_ts == at(100)
    assert (c["c2"].detected, c["c2"].leakage) == (True, 1.0)
    assert (c["c3"].detected, c["c3"].share_acted, c["c3"].first_action_ts) == (False, 0.0, None)
    assert c["solo:A4"].profiles == ["scraper"]


def test_auc_counts_ties_as_half(m: Metrics) -> None:
    # legit scores 0.10 0.40 0.40 0.20 0 (L5); attack 0.95 0.40 0.90 0.30 0 (A5).
    # attack-over-legit pairs: 0.95→5, 0.90→5, 0.40→3 + 2 ties, 0.30→3, 0→1 tie; of 25
    assert m.roc_auc == pytest.approx((5 + 5 + 3 + 1 + 3 + 0.5) / 25)


def test_recall_at_fpr(m: Metrics) -> None:
    # 5 legit accounts: 0.1 % and 1 % both allow 0 false positives, so the threshold is the
    # highest legitimate score, 0.40, and only 0.95 and 0.90 are strictly above it.
    for target in (0.001, 0.01):
        r = next(x for x in m.recall_at_fpr if x.max_fpr == target)
        assert (r.threshold, r.recall, r.fpr) == (0.40, 2 / 5, 0.0)
    assert m.recall_at(0.01) == 2 / 5
    assert m.recall_at(0.05) is None


def test_recall_at_fpr_ties_are_conservative() -> None:
    legit_scores = [0.10, 0.40, 0.40, 0.20, 0.0]
    attack_scores = [0.95, 0.40, 0.90, 0.30, 0.0]
    # 20 %: one false positive allowed, but the two top legit scores tie at 0.40: flagging one
    # flags both (40 % FPR), so neither is; recall stays 2/5.
    r = recall_at_fpr(legit_scores, attack_scores, 0.2)
    assert (r.threshold, r.fpr, r.recall) == (0.40, 0.0, 2 / 5)
    # 50 %: two allowed, threshold 0.20 (the 3rd highest): 0.40 0.40 flagged, FPR 2/5
    r = recall_at_fpr(legit_scores, attack_scores, 0.5)
    assert (r.threshold, r.fpr, r.recall) == (0.20, 2 / 5, 4 / 5)
    r = recall_at_fpr(legit_scores, attack_scores, 1.0)
    assert (r.threshold, r.fpr, r.recall) == (None, 1.0, 1.0)
    r = recall_at_fpr([], attack_scores, 0.01)
    assert (r.threshold, r.fpr, r.recall) == (None, None, None)
    # exactly 1 % of 1,000: ten false positives allowed (no float rounding surprise)
    r = recall_at_fpr([i / 1000 for i in range(1000)], [0.99], 0.01)
    assert (r.threshold, r.fpr, r.recall) == (0.989, 10 / 1000, 1.0)


def test_time_to_action(m: Metrics) -> None:
    # A1: 100 s after its first exchange; A3: 3600 - 600 = 3000 s.
    assert m.seconds_to_action.n == 2
    assert m.seconds_to_action.median == 1550.0
    assert m.seconds_to_action.p90 == pytest.approx(100 + 0.9 * 2900)
    assert m.exchanges_to_action.median == 8.5
    assert m.exchanges_to_action.p90 == pytest.approx(5 + 0.9 * 7)


def test_quantile() -> None:
    assert quantile([7.0], 0.9) == 7.0
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert quantile([0.0, 10.0], 0.9) == 9.0


def test_no_legit_accounts() -> None:
    labels = {a: lb for a, lb in LABELS.items() if lb.label == "attack"}
    m = evaluate(VERDICTS, labels, ACTIVITY, system="x")
    assert (m.legit_accounts, m.fpr, m.roc_auc) == (0, None, None)
    assert all(r.recall is None for r in m.recall_at_fpr)
    assert m.recall == pytest.approx(2 / 5)
    assert roc_points(VERDICTS, labels, ACTIVITY) is None


def test_no_attack_accounts() -> None:
    labels = {a: lb for a, lb in LABELS.items() if lb.label == "legit"}
    m = evaluate(VERDICTS, labels, ACTIVITY, system="x")
    assert (m.attack_accounts, m.recall, m.roc_auc, m.leakage) == (0, None, None, None)
    assert (m.campaigns_total, m.campaign_recall, m.campaigns) == (0, None, [])
    assert m.seconds_to_action.n == 0
    assert m.seconds_to_action.median is None
    assert m.fpr == pytest.approx(1 / 5)


def test_nothing_at_all() -> None:
    m = evaluate([], {}, {}, system="empty")
    assert (m.fpr, m.recall, m.leakage, m.roc_auc) == (None, None, None, None)
    assert msgspec.json.decode(msgspec.json.encode(m), type=Metrics) == m


def test_acted_without_exchanges_before_action_leaks_everything() -> None:
    labels = {"A": attack("A", "hydra", "c")}
    m = evaluate([verdict("A", 0.9, acted_at=10)], labels, {"A": act(9)}, system="x")
    assert (m.recall, m.leaked_attack, m.missing_eba) == (1.0, 9, 1)
    assert m.exchanges_to_action.n == 0
    assert m.seconds_to_action.n == 1


def test_exchanges_before_action_is_capped_at_served() -> None:
    labels = {"A": attack("A", "hydra", "c")}
    m = evaluate([verdict("A", 0.9, acted_at=10, eba=50)], labels, {"A": act(9)}, system="x")
    assert (m.served_attack, m.leaked_attack) == (9, 9)


def test_two_verdicts_for_one_account_is_an_error() -> None:
    with pytest.raises(BenchError, match="two verdicts") as e:
        evaluate([verdict("A1", 0.1), verdict("A1", 0.2)], LABELS, ACTIVITY, system="x")
    assert isinstance(e.value, DistillwatchError)


def test_metrics_encode_to_json(m: Metrics) -> None:
    data = msgspec.json.encode(m)
    assert b"NaN" not in data and b"Infinity" not in data
    assert msgspec.json.decode(data, type=Metrics) == m
    assert m.summary_row() == ("hand", "20.0 %", "40.0 %", "0.700", "40.0 %", "72.7 %", "2/4")


def test_roc_points_match_the_auc(m: Metrics) -> None:
    roc = roc_points(VERDICTS, LABELS, ACTIVITY)
    assert roc is not None
    assert (roc.legit, roc.attack) == (5, 5)
    assert roc.auc == m.roc_auc
    assert roc.fpr[0] == 0.0 and roc.fpr[-1] == 1.0 and roc.tpr[-1] == 1.0
    area = sum(
        (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) / 2
        for i in range(1, len(roc.fpr))
    )
    assert area == pytest.approx(m.roc_auc)


# ---------------------------------------------------------------------------------------------
# activity and leakage over time


def test_activity_counts_served_and_spans() -> None:
    log = [
        exchange(1, account="a", seconds=50, status=200),
        exchange(2, account="a", seconds=10, status=None),
        exchange(3, account="a", seconds=90, status=429),
        exchange(4, account="b", seconds=5, status=500),
        exchange(5, account="a", seconds=30, status=204),
    ]
    got = activity([log[:2], [], log[2:]])
    assert got["a"] == Activity(exchanges=4, served=3, first_ts=at(10), last_ts=at(90))
    assert got["b"] == Activity(exchanges=1, served=0, first_ts=at(5), last_ts=at(5))


def test_leakage_curve_by_hand() -> None:
    h = 3600
    labels = {
        "x": attack("x", "hydra", "c1"),
        "y": attack("y", "hydra", "c1"),
        "z": attack("z", "scraper", None),
        "l": legit("l", "chat"),
    }
    log = [
        exchange(1, account="x", seconds=10),
        exchange(2, account="l", seconds=20),
        exchange(3, account="x", seconds=h + 10),  # the triggering exchange: it leaks
        exchange(4, account="x", seconds=h + 20, status=429),  # not served
        exchange(5, account="x", seconds=h + 30),  # served after the action: not leaked
        exchange(6, account="y", seconds=h + 40),  # y never acted on: leaks
        exchange(7, account="z", seconds=3 * h + 5),
        exchange(8, account="l", seconds=3 * h + 50),
    ]
    verdicts = [verdict("x", 0.9, acted_at=h + 10, eba=2), verdict("y", 0.2)]
    curves = leakage_curve([log[:3], log[3:]], verdicts, labels, bucket_s=h)
    hours = [f"2026-03-01T0{i}:00:00.000Z" for i in range(4)]
    assert curves == {
        "c1": [(hours[0], 1, 1), (hours[1], 4, 3), (hours[2], 4, 3), (hours[3], 4, 3)],
        "solo:z": [(hours[0], 0, 0), (hours[1], 0, 0), (hours[2], 0, 0), (hours[3], 1, 1)],
    }
    m = evaluate(verdicts, labels, activity([log]), system="x")
    c = {x.campaign_id: x for x in m.campaigns}
    assert (c["c1"].served, c["c1"].leaked) == (4, 3)
    assert leakage_curve([], verdicts, labels) == {}
    with pytest.raises(ValueError, match="bucket_s"):
        leakage_curve([log], verdicts, labels, bucket_s=0)


def _causal_world(seed: int) -> tuple[list[Exchange], dict[str, Label], list[Verdict]]:
    """Random traffic, and verdicts as the causal replay makes them (trigger included)."""
    rng = random.Random(seed)
    labels: dict[str, Label] = {}
    log: list[Exchange] = []
    for i in range(30):
        a = f"acct-{i:02d}"
        if rng.random() < 0.3:
            labels[a] = legit(a, "chat")
        else:
            labels[a] = attack(a, rng.choice(["hydra", "scraper"]), rng.choice(["c1", "c2", None]))
        for j in range(rng.randint(1, 40)):
            status = rng.choice([200, 200, 200, None, 429, 503])
            log.append(exchange(j, account=a, seconds=rng.uniform(0, 5 * 86400), status=status))
    log.sort(key=lambda e: (e.ts, e.id))
    verdicts = []
    for a in labels:
        mine = [e for e in log if e.account_id == a]
        if rng.random() < 0.5:
            verdicts.append(verdict(a, rng.random()))
            continue
        k = rng.randrange(len(mine))
        served = sum(1 for e in mine[: k + 1] if e.served)
        verdicts.append(
            Verdict(
                account_id=a,
                score=rng.random(),
                action=Action.THROTTLE,
                first_action_ts=mine[k].ts,
                exchanges_before_action=served,
            )
        )
    return log, labels, verdicts


def _batches(log: list[Exchange], size: int) -> Iterator[list[Exchange]]:
    for i in range(0, len(log), size):
        yield log[i : i + size]


@pytest.mark.parametrize("seed", range(8))
def test_leakage_curve_ends_where_evaluate_does(seed: int) -> None:
    log, labels, verdicts = _causal_world(seed)
    m = evaluate(verdicts, labels, activity(_batches(log, 17)), system="x")
    curves = leakage_curve(_batches(log, 13), verdicts, labels, bucket_s=1800)
    final = {cid: points[-1][1:] for cid, points in curves.items()}
    assert final == {c.campaign_id: (c.served, c.leaked) for c in m.campaigns}
    assert sum(s for s, _ in final.values()) == m.served_attack
    assert sum(lk for _, lk in final.values()) == m.leaked_attack
    # and the leaked exchanges are exactly those at or before first_action_ts (spec)
    fat = {v.account_id: v.first_action_ts for v in verdicts}
    by_ts = sum(
        1
        for e in log
        if e.served
        and labels[e.account_id].label == "attack"
        and ((t := fat[e.account_id]) is None or e.ts <= t)
    )
    assert by_ts == m.leaked_attack
    # cumulative series never decrease and share one time axis
    axes = {tuple(p[0] for p in points) for points in curves.values()}
    assert len(axes) == 1
    for points in curves.values():
        assert all(
            a[1] <= b[1] and a[2] <= b[2] and b[2] <= b[1] for a, b in itertools.pairwise(points)
        )
