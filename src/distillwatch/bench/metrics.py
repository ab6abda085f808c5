"""Scoring a detector's verdicts against the benchmark's labels, the same way for every system.

Everything here is pure and streams over the exchange log once, in O(accounts) memory:
``activity`` summarises the log per account, ``evaluate`` turns verdicts, labels and that
summary into a ``Metrics`` record, ``roc_points`` gives the ROC curve of the final scores, and
``leakage_curve`` shows, per campaign and over time, how many attack exchanges were served and
how many of them before the account was first acted on.

The rules (they are the documented metric definitions):

* Only accounts with at least one exchange in the log are scored. Labelled accounts without
  activity, verdicts of unlabelled accounts and active accounts without a label are ignored
  and only counted.
* An account is *acted on* when its verdict has a ``first_action_ts`` (the causal replay
  reached ``throttle`` or stronger at some point). A labelled, active account without a
  verdict is not acted on and has score 0; it is counted as *missing*.
* FPR = acted legitimate accounts / legitimate accounts; recall = acted attack accounts /
  attack accounts; both overall and per ``Label.profile``.
* A campaign (``Label.campaign_id``; an attack account without one is a campaign of its own,
  ``solo:<account_id>``) is detected when at least one of its accounts is acted on;
  campaign recall = detected campaigns / campaigns.
* Leakage = attack exchanges served before the account's first action / served attack
  exchanges. An acted account leaks its verdict's ``exchanges_before_action`` (the triggering
  exchange included, see docs/architecture.md "Causality"; capped at its served exchanges); an
  account never acted on leaks all its served exchanges, and so does an acted account whose
  verdict lacks ``exchanges_before_action`` (conservative; counted as ``missing_eba``).
* ROC AUC of the final verdict score, attack positive (``sklearn.metrics.roc_auc_score``, ties
  count one half); None when one class is absent.
* Recall at FPR <= x: with n legitimate accounts, k = floor(x * n) false positives are allowed;
  an account is flagged when its score is strictly greater than t, the (k+1)-th highest
  legitimate score. Accounts tied with t are never flagged, so ties never push the FPR over x
  and an attack account tied with a legitimate one is not counted as found (see
  ``recall_at_fpr``).
* Attribution (``attribution``): the verdicts' ``campaign_id`` against the true campaigns —
  purity, adjusted Rand index (``sklearn.metrics.adjusted_rand_score``; accounts without a
  campaign are singletons), true campaigns found, legitimate groups reported, and exchanges
  before action of accounts that joined an already-detected campaign (``Attribution``).
* Time and exchanges to first action: ``first_action_ts`` minus the account's first exchange
  (seconds), and ``exchanges_before_action``, over acted attack accounts: median and p90
  (linear interpolation between order statistics, numpy's default).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

import msgspec

from distillwatch.bench.metric_records import (
    FPR_TARGETS,
    Activity,
    Attribution,
    BenchError,
    CampaignMetrics,
    CurvePoint,
    Distribution,
    Metrics,
    ProfileMetrics,
    RecallAtFpr,
    RocCurve,
    num,
    pct,
)
from distillwatch.clock import format_rfc3339
from distillwatch.records import Exchange, Label, Verdict

__all__ = [
    "FPR_TARGETS",
    "Activity",
    "Attribution",
    "BenchError",
    "CampaignMetrics",
    "CurvePoint",
    "Distribution",
    "Metrics",
    "ProfileMetrics",
    "RecallAtFpr",
    "RocCurve",
    "activity",
    "attribution",
    "campaign_key",
    "evaluate",
    "leakage_curve",
    "num",
    "pct",
    "quantile",
    "recall_at_fpr",
    "roc_points",
]

# ---------------------------------------------------------------------------------------------
# activity


class _Acc:
    __slots__ = ("exchanges", "first", "last", "served")

    def __init__(self, ts: datetime) -> None:
        self.exchanges = 0
        self.served = 0
        self.first = ts
        self.last = ts


def activity(batches: Iterable[list[Exchange]]) -> dict[str, Activity]:
    """Per account: exchanges, served exchanges (``Exchange.served``), first and last ``ts``.

    One pass, O(accounts) memory, any order of exchanges.
    """
    acc: dict[str, _Acc] = {}
    for batch in batches:
        for e in batch:
            a = acc.get(e.account_id)
            if a is None:
                a = acc[e.account_id] = _Acc(e.ts)
            a.exchanges += 1
            if e.served:
                a.served += 1
            if e.ts < a.first:
                a.first = e.ts
            elif e.ts > a.last:
                a.last = e.ts
    return {
        k: Activity(exchanges=a.exchanges, served=a.served, first_ts=a.first, last_ts=a.last)
        for k, a in acc.items()
    }


# ---------------------------------------------------------------------------------------------
# helpers


def campaign_key(label: Label) -> str:
    """The campaign an attack account counts in: its ``campaign_id``, else ``solo:<account>``."""
    return label.campaign_id if label.campaign_id is not None else f"solo:{label.account_id}"


def _profile(label: Label) -> str:
    return label.profile if label.profile is not None else "(none)"


def _by_account(verdicts: Iterable[Verdict]) -> dict[str, Verdict]:
    out: dict[str, Verdict] = {}
    for v in verdicts:
        if v.account_id in out:
            raise BenchError(f"two verdicts for account {v.account_id!r}")
        out[v.account_id] = v
    return out


def _leaked(v: Verdict | None, served: int) -> tuple[int, bool]:
    """Served exchanges before the first action, and whether the count had to be assumed."""
    if v is None or v.first_action_ts is None:
        return served, False
    if v.exchanges_before_action is None:
        return served, True
    return min(v.exchanges_before_action, served), False


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolating linearly (numpy's default).

    >>> quantile([1.0, 2.0, 3.0, 4.0], 0.5), quantile([1.0, 2.0, 3.0, 4.0], 0.9)
    (2.5, 3.7)
    >>> quantile([], 0.5) is None
    True
    """
    n = len(sorted_values)
    if n == 0:
        return None
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac, 9)


def _distribution(values: Iterable[float]) -> Distribution:
    xs = sorted(values)
    return Distribution(n=len(xs), median=quantile(xs, 0.5), p90=quantile(xs, 0.9))


def recall_at_fpr(
    legit_scores: Sequence[float], attack_scores: Sequence[float], max_fpr: float
) -> RecallAtFpr:
    """Recall at FPR <= ``max_fpr``, ties resolved against the detector.

    With n legitimate scores, k = floor(max_fpr * n) false positives are allowed; the threshold
    t is the (k+1)-th highest legitimate score and an account is flagged when its score is
    strictly greater than t. That is the loosest threshold whose FPR stays within the target:
    accounts tied at t are flagged all together or not at all, so they are not flagged.

    >>> r = recall_at_fpr([0.1, 0.2, 0.9], [0.5, 0.9, 0.95], max_fpr=0.1)
    >>> r.threshold, round(r.recall, 4), r.fpr  # 0.9 ties a legit score: not counted
    (0.9, 0.3333, 0.0)
    >>> r = recall_at_fpr([0.1, 0.2, 0.9], [0.5, 0.9, 0.95], max_fpr=0.34)
    >>> r.threshold, r.recall, round(r.fpr, 4)
    (0.2, 1.0, 0.3333)
    """
    n_legit, n_attack = len(legit_scores), len(attack_scores)
    if not n_legit or not n_attack:
        return RecallAtFpr(max_fpr=max_fpr, recall=None, threshold=None, fpr=None)
    allowed = math.floor(max_fpr * n_legit + 1e-9)
    if allowed >= n_legit:
        return RecallAtFpr(max_fpr=max_fpr, recall=1.0, threshold=None, fpr=1.0)
    t = sorted(legit_scores, reverse=True)[allowed]
    fp = sum(1 for s in legit_scores if s > t)
    tp = sum(1 for s in attack_scores if s > t)
    return RecallAtFpr(max_fpr=max_fpr, recall=tp / n_attack, threshold=t, fpr=fp / n_legit)


class _Row(msgspec.Struct, frozen=True):
    account_id: str
    label: Label
    act: Activity
    verdict: Verdict | None


def _rows(
    verdicts: Iterable[Verdict], labels: Mapping[str, Label], active: Mapping[str, Activity]
) -> tuple[list[_Row], dict[str, int]]:
    by_account = _by_account(verdicts)
    rows = [
        _Row(a, labels[a], active[a], by_account.get(a))
        for a in sorted(labels.keys() & active.keys())
    ]
    counts = {
        "missing_verdicts": sum(1 for r in rows if r.verdict is None),
        "unlabelled_verdicts": sum(1 for a in by_account if a not in labels),
        "unlabelled_active": sum(1 for a in active if a not in labels),
        "inactive_labelled": sum(1 for a in labels if a not in active),
    }
    return rows, counts


def _score(r: _Row) -> float:
    return r.verdict.score if r.verdict is not None else 0.0


def _acted(r: _Row) -> bool:
    return r.verdict is not None and r.verdict.first_action_ts is not None


def _to_action(rows: Iterable[_Row]) -> tuple[Distribution, Distribution]:
    seconds: list[float] = []
    exchanges: list[float] = []
    for r in rows:
        v = r.verdict
        if v is None or v.first_action_ts is None:
            continue
        seconds.append(max(0.0, (v.first_action_ts - r.act.first_ts).total_seconds()))
        if v.exchanges_before_action is not None:
            exchanges.append(float(v.exchanges_before_action))
    return _distribution(seconds), _distribution(exchanges)


def _auc(rows: Sequence[_Row]) -> float | None:
    y = [int(r.label.label == "attack") for r in rows]
    if not y or min(y) == max(y):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, [_score(r) for r in rows]))


# ---------------------------------------------------------------------------------------------
# evaluate


def evaluate(
    verdicts: Iterable[Verdict],
    labels: Mapping[str, Label],
    activity: Mapping[str, Activity],
    *,
    system: str,
    fpr_targets: Sequence[float] = FPR_TARGETS,
) -> Metrics:
    """Score ``system``'s verdicts against the labels over the accounts active in the log.

    >>> from datetime import UTC, datetime
    >>> from distillwatch.records import Action, Label, Verdict
    >>> t = datetime(2026, 3, 1, tzinfo=UTC)
    >>> act = {a: Activity(exchanges=10, served=10, first_ts=t, last_ts=t) for a in "abc"}
    >>> labels = {
    ...     "a": Label(account_id="a", label="legit", profile="chat"),
    ...     "b": Label(account_id="b", label="attack", campaign_id="c1", profile="hydra"),
    ...     "c": Label(account_id="c", label="attack", campaign_id="c1", profile="hydra"),
    ... }
    >>> verdicts = [
    ...     Verdict(account_id="a", score=0.1, action=Action.ALLOW),
    ...     Verdict(account_id="b", score=0.9, action=Action.BLOCK, first_action_ts=t,
    ...             exchanges_before_action=4),
    ... ]
    >>> m = evaluate(verdicts, labels, act, system="demo")
    >>> m.fpr, m.recall, m.campaign_recall, m.leakage, m.roc_auc, m.missing_verdicts
    (0.0, 0.5, 1.0, 0.7, 0.5, 1)
    """
    rows, counts = _rows(verdicts, labels, activity)
    legit = [r for r in rows if r.label.label == "legit"]
    attack = [r for r in rows if r.label.label == "attack"]

    leaked_total = 0
    missing_eba = 0
    leak_of: dict[str, int] = {}
    for r in attack:
        n, assumed = _leaked(r.verdict, r.act.served)
        leak_of[r.account_id] = n
        leaked_total += n
        missing_eba += assumed
    served_attack = sum(r.act.served for r in attack)

    profiles: list[ProfileMetrics] = []
    for kind, group in (("legit", legit), ("attack", attack)):
        for name in sorted({_profile(r.label) for r in group}):
            profiles.append(
                _profile_metrics(
                    name, kind, [r for r in group if _profile(r.label) == name], leak_of
                )
            )

    campaigns = _campaigns(attack, leak_of)
    seconds, exchanges = _to_action(attack)
    legit_scores = [_score(r) for r in legit]
    attack_scores = [_score(r) for r in attack]
    detected = sum(c.detected for c in campaigns)
    return Metrics(
        system=system,
        legit_accounts=len(legit),
        attack_accounts=len(attack),
        legit_acted=sum(map(_acted, legit)),
        attack_acted=sum(map(_acted, attack)),
        fpr=_ratio(sum(map(_acted, legit)), len(legit)),
        recall=_ratio(sum(map(_acted, attack)), len(attack)),
        roc_auc=_auc(rows),
        recall_at_fpr=[recall_at_fpr(legit_scores, attack_scores, x) for x in fpr_targets],
        served_attack=served_attack,
        leaked_attack=leaked_total,
        leakage=_ratio(leaked_total, served_attack),
        campaigns_total=len(campaigns),
        campaigns_detected=detected,
        campaign_recall=_ratio(detected, len(campaigns)),
        seconds_to_action=seconds,
        exchanges_to_action=exchanges,
        missing_eba=missing_eba,
        profiles=profiles,
        campaigns=campaigns,
        attribution=attribution(rows, campaigns),
        **counts,
    )


def attribution(rows: Sequence[_Row], campaigns: Sequence[CampaignMetrics]) -> Attribution:
    """Reported campaigns (verdicts' ``campaign_id``) against the true ones (see ``Attribution``).

    Scored over the active labelled accounts; ``rows`` as ``evaluate`` builds them.
    """
    from sklearn.metrics import adjusted_rand_score

    truth = [
        campaign_key(r.label) if r.label.label == "attack" else f"legit:{r.account_id}"
        for r in rows
    ]
    reported = [r.verdict.campaign_id if r.verdict else None for r in rows]
    pred = [c or f"none:{r.account_id}" for c, r in zip(reported, rows, strict=True)]
    members: dict[str, list[str]] = {}
    for c, t in zip(reported, truth, strict=True):
        if c is not None:
            members.setdefault(c, []).append(t)
    in_reported = [t for ts in members.values() for t in ts]
    attackers = sum(not t.startswith("legit:") for t in in_reported)
    sizes: dict[str, int] = {}
    for t in truth:
        sizes[t] = sizes.get(t, 0) + 1
    found = 0
    for cid, size in sizes.items():
        if size < 2 or cid.startswith("legit:"):
            continue
        for ts in members.values():
            mine = ts.count(cid)
            if mine * 2 >= size and mine * 2 >= len(ts):
                found += 1
                break
    legit_groups = sum(
        sum(t.startswith("legit:") for t in ts) * 2 > len(ts) for ts in members.values()
    )
    detected_at = {c.campaign_id: c.first_action_ts for c in campaigns}
    late = [
        float(r.verdict.exchanges_before_action)
        for r in rows
        if r.label.label == "attack"
        and r.verdict is not None
        and r.verdict.exchanges_before_action is not None
        and (at := detected_at.get(campaign_key(r.label))) is not None
        and r.act.first_ts > at
    ]
    return Attribution(
        reported_campaigns=len(members),
        reported_accounts=len(in_reported),
        purity=_ratio(attackers, len(in_reported)),
        ari=round(float(adjusted_rand_score(truth, pred)), 6) if rows else None,
        campaigns_multi=sum(1 for c, n in sizes.items() if n >= 2 and not c.startswith("legit:")),
        campaigns_found=found,
        legit_groups=legit_groups,
        late_joiners=_distribution(late),
    )


def _profile_metrics(
    name: str, kind: str, group: list[_Row], leak_of: Mapping[str, int]
) -> ProfileMetrics:
    acted = sum(map(_acted, group))
    served = sum(r.act.served for r in group)
    is_attack = kind == "attack"
    leaked = sum(leak_of[r.account_id] for r in group) if is_attack else None
    seconds, exchanges = _to_action(group) if is_attack else (None, None)
    return ProfileMetrics(
        profile=name,
        label=kind,
        accounts=len(group),
        acted=acted,
        missing=sum(1 for r in group if r.verdict is None),
        fpr=None if is_attack else _ratio(acted, len(group)),
        recall=_ratio(acted, len(group)) if is_attack else None,
        served=served,
        leaked=leaked,
        leakage=_ratio(leaked, served) if leaked is not None else None,
        seconds_to_action=seconds,
        exchanges_to_action=exchanges,
    )


def _campaigns(attack: list[_Row], leak_of: Mapping[str, int]) -> list[CampaignMetrics]:
    groups: dict[str, list[_Row]] = {}
    for r in attack:
        groups.setdefault(campaign_key(r.label), []).append(r)
    out = []
    for cid in sorted(groups):
        g = groups[cid]
        acted = [r for r in g if _acted(r)]
        served = sum(r.act.served for r in g)
        leaked = sum(leak_of[r.account_id] for r in g)
        first = min(
            (r.verdict.first_action_ts for r in acted if r.verdict and r.verdict.first_action_ts),
            default=None,
        )
        out.append(
            CampaignMetrics(
                campaign_id=cid,
                profiles=sorted({_profile(r.label) for r in g}),
                accounts=len(g),
                acted=len(acted),
                detected=bool(acted),
                share_acted=len(acted) / len(g),
                served=served,
                leaked=leaked,
                leakage=_ratio(leaked, served),
                first_action_ts=first,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# ROC


def roc_points(
    verdicts: Iterable[Verdict], labels: Mapping[str, Label], activity: Mapping[str, Activity]
) -> RocCurve | None:
    """The ROC curve of the final scores over the accounts ``evaluate`` scores (same rules:
    verdict-less accounts score 0); None when legitimate or attack accounts are absent."""
    rows, _ = _rows(verdicts, labels, activity)
    y = [int(r.label.label == "attack") for r in rows]
    if not y or min(y) == max(y):
        return None
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = [_score(r) for r in rows]
    fpr, tpr, _t = roc_curve(y, scores)
    return RocCurve(
        fpr=[round(float(x), 6) for x in fpr],
        tpr=[round(float(x), 6) for x in tpr],
        auc=float(roc_auc_score(y, scores)),
        legit=len(y) - sum(y),
        attack=sum(y),
    )


# ---------------------------------------------------------------------------------------------
# leakage over time


def leakage_curve(
    batches: Iterable[list[Exchange]],
    verdicts: Iterable[Verdict],
    labels: Mapping[str, Label],
    *,
    bucket_s: int = 3600,
) -> dict[str, list[CurvePoint]]:
    """Per campaign, per time bucket: cumulative served attack exchanges and leaked ones.

    An exchange leaks under the rule ``evaluate`` uses: the first ``exchanges_before_action``
    served exchanges of an acted account (in log order; the log is in time order, so these are
    the ones up to and including the triggering exchange), every served exchange of an account
    never acted on or whose verdict lacks ``exchanges_before_action``. The last point of each
    campaign therefore equals ``evaluate``'s ``served`` and ``leaked`` for it. Buckets are
    ``bucket_s`` seconds aligned on the Unix epoch (UTC) and span the whole log, so every
    campaign's list has the same time axis; one pass, O(accounts + campaigns x buckets) memory.
    """
    if bucket_s <= 0:
        raise ValueError("bucket_s must be positive")
    by_account = _by_account(verdicts)
    budget: dict[str, int | None] = {}  # attack account -> served exchanges that leak (None: all)
    campaign_of: dict[str, str] = {}
    for a, lb in labels.items():
        if lb.label != "attack":
            continue
        campaign_of[a] = campaign_key(lb)
        v = by_account.get(a)
        acted = v is not None and v.first_action_ts is not None
        budget[a] = v.exchanges_before_action if acted and v is not None else None
    counts: dict[str, dict[int, list[int]]] = {}
    served_so_far: dict[str, int] = {}
    lo: int | None = None
    hi: int | None = None
    for batch in batches:
        for e in batch:
            b = int(e.ts.timestamp() // bucket_s)
            lo = b if lo is None or b < lo else lo
            hi = b if hi is None or b > hi else hi
            cid = campaign_of.get(e.account_id)
            if cid is None:
                continue
            cell = counts.setdefault(cid, {}).setdefault(b, [0, 0])
            if not e.served:
                continue
            n = served_so_far.get(e.account_id, 0)
            served_so_far[e.account_id] = n + 1
            cell[0] += 1
            cap = budget[e.account_id]
            if cap is None or n < cap:
                cell[1] += 1
    if lo is None or hi is None:
        return {}
    return {cid: list(_cumulative(counts[cid], lo, hi, bucket_s)) for cid in sorted(counts)}


def _cumulative(
    cells: Mapping[int, list[int]], lo: int, hi: int, bucket_s: int
) -> Iterator[CurvePoint]:
    served = leaked = 0
    for b in range(lo, hi + 1):
        c = cells.get(b)
        if c is not None:
            served += c[0]
            leaked += c[1]
        yield format_rfc3339(datetime.fromtimestamp(b * bucket_s, tz=UTC)), served, leaked
