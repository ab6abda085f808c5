"""The records ``bench.metrics`` produces (msgspec Structs, JSON-clean) and their formatting.

Every ratio is None, never NaN, when its denominator is 0, so ``metrics.json`` is strict JSON.
The definitions behind each field are in ``distillwatch.bench.metrics``.
"""

from __future__ import annotations

import math
from datetime import datetime

import msgspec

from distillwatch.errors import DistillwatchError

FPR_TARGETS = (0.001, 0.01)
"""The FPR ceilings ``evaluate`` reports recall at (0.1 % and 1 %)."""

CurvePoint = tuple[str, int, int]
"""``(bucket_start_rfc3339, served_attack_cumulative, leaked_cumulative)``."""


class BenchError(DistillwatchError):
    """The benchmark's inputs are inconsistent (e.g. two verdicts for one account)."""


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """What one account did in the log: exchanges, served exchanges, first and last time."""

    exchanges: int
    served: int
    first_ts: datetime
    last_ts: datetime


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """Median and 90th percentile of ``n`` values (None when ``n`` is 0)."""

    n: int
    median: float | None
    p90: float | None


class RecallAtFpr(msgspec.Struct, frozen=True, kw_only=True):
    """Recall when the score threshold keeps the FPR at or below ``max_fpr``.

    Flagged means ``score > threshold``; ``threshold`` None with a recall means every account
    is flagged. ``fpr`` is the FPR actually reached. All None when a class is absent.
    """

    max_fpr: float
    recall: float | None
    threshold: float | None
    fpr: float | None


class ProfileMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One generator profile: FPR (legitimate profiles) or recall and leakage (attack ones)."""

    profile: str
    label: str
    accounts: int
    acted: int
    missing: int
    fpr: float | None
    recall: float | None
    served: int
    leaked: int | None
    leakage: float | None
    seconds_to_action: Distribution | None
    exchanges_to_action: Distribution | None


class CampaignMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One campaign: detected when any of its accounts was acted on."""

    campaign_id: str
    profiles: list[str]
    accounts: int
    acted: int
    detected: bool
    share_acted: float
    served: int
    leaked: int
    leakage: float | None
    first_action_ts: datetime | None


class Attribution(msgspec.Struct, frozen=True, kw_only=True):
    """How well the verdicts' ``campaign_id`` groups accounts into the true campaigns.

    ``purity``: attack accounts / accounts with a reported campaign id. ``ari``: adjusted Rand
    index between reported and true campaigns over the active labelled accounts (an account
    without a campaign, reported or true, is a group of its own). ``campaigns_found``: true
    campaigns of two or more accounts for which one reported campaign holds at least half of
    their accounts and is at least half theirs. ``legit_groups``: reported campaigns whose
    accounts are mostly legitimate. ``late_joiners``: exchanges before action of attack
    accounts that first appeared after their campaign's first action (new accounts of an
    already-detected campaign).
    """

    reported_campaigns: int
    reported_accounts: int
    purity: float | None
    ari: float | None
    campaigns_multi: int
    campaigns_found: int
    legit_groups: int
    late_joiners: Distribution


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """Every figure of one system on one labelled log (see the module docstring)."""

    system: str
    legit_accounts: int
    attack_accounts: int
    legit_acted: int
    attack_acted: int
    fpr: float | None
    recall: float | None
    roc_auc: float | None
    recall_at_fpr: list[RecallAtFpr]
    served_attack: int
    leaked_attack: int
    leakage: float | None
    campaigns_total: int
    campaigns_detected: int
    campaign_recall: float | None
    seconds_to_action: Distribution
    exchanges_to_action: Distribution
    missing_verdicts: int
    missing_eba: int
    unlabelled_verdicts: int
    unlabelled_active: int
    inactive_labelled: int
    profiles: list[ProfileMetrics]
    campaigns: list[CampaignMetrics]
    attribution: Attribution | None = None

    def recall_at(self, max_fpr: float) -> float | None:
        """The recall at FPR <= ``max_fpr``, when that ceiling was evaluated."""
        for r in self.recall_at_fpr:
            if math.isclose(r.max_fpr, max_fpr):
                return r.recall
        return None

    def summary_row(self) -> tuple[str, ...]:
        """system, FPR, recall, ROC AUC, recall@1%FPR, leakage, campaigns detected/total."""
        return (
            self.system,
            pct(self.fpr),
            pct(self.recall),
            num(self.roc_auc),
            pct(self.recall_at(0.01)),
            pct(self.leakage),
            f"{self.campaigns_detected}/{self.campaigns_total}",
        )


class RocCurve(msgspec.Struct, frozen=True, kw_only=True):
    """ROC curve of final scores (attack positive) over the scored accounts."""

    fpr: list[float]
    tpr: list[float]
    auc: float
    legit: int
    attack: int


# ---------------------------------------------------------------------------------------------
# formatting shared with the report


def pct(x: float | None, digits: int | None = None) -> str:
    """A share as a percentage, with more digits for small values; ``—`` for None.

    >>> pct(0.0012), pct(0.5), pct(None), pct(1.0)
    ('0.12 %', '50.0 %', '—', '100 %')
    """
    if x is None:
        return "—"
    v = 100.0 * x
    if digits is None:
        digits = 0 if v in (0.0, 100.0) else (2 if v < 1 else 1)
    return f"{v:.{digits}f} %"


def num(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"
