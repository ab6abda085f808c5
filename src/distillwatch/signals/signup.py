"""Sign-up signals: what the accounts file says about an account and its siblings.

Distillation networks open many fresh, unverified accounts in bursts and pay for them with
a few shared cards. Each fact is ordinary on its own (new customers sign up every day,
families share a card, a class signs up together), so every signal here is capped low.
Without an accounts file they are all unavailable ("no sign-up metadata").

Sign-up metadata is known from the moment an account is created, so comparing an account
with the *other* accounts created before the time of evaluation is causal. The engine
hands the whole accounts table to ``bind`` (the optional hook of ``SharedPayment`` and
``SignupBurst``) once; they index it there, and ``evaluate`` is a few binary searches over
the account's own group. Accounts of one organisation (same ``org_id``) share cards and
sign up together by design; they are not counted against each other.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from distillwatch.records import Account, Exchange, SignalValue
from distillwatch.signals.base import EvalContext, clip, computed, unavailable
from distillwatch.signals.registry import register

HOUR = 3_600.0
DAY = 86_400.0
QUANTUM = 900.0
"""Group counts are taken at ``now`` rounded down to 15 minutes: a pure, cheap function."""
_NO_ACCOUNT = "no sign-up metadata (no accounts file, or the account is not in it)"


def _created(account: Account) -> float:
    """Sign-up time in epoch seconds; an account without one has existed all along."""
    return account.created_at.timestamp() if account.created_at is not None else -math.inf


@dataclass(slots=True)
class _Memo:
    key: object = None
    value: SignalValue | None = None
    created: float = 0.0


@register
class AccountAge:
    """Account age at the time of the exchange: new accounts are more suspicious.

    Evidence 1.2 up to one day old, falling linearly in log-age to 0 at 30 days, down to
    −0.3 at 180 days and beyond (an established customer). New legitimate customers exist,
    so age alone stays far from a verdict.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Account
    >>> sig = AccountAge(); st = sig.new_state()
    >>> acct = Account(account_id="a", created_at=datetime(2026, 3, 1, tzinfo=UTC))
    >>> now = datetime(2026, 3, 4, 6, tzinfo=UTC).timestamp()
    >>> v = sig.evaluate(st, EvalContext(now=now, account=acct, tier="free", exchanges=1))
    >>> v.evidence, v.explanation
    (0.78, 'account opened 3.2 days before this request; established accounts: over 30 days')
    """

    id: ClassVar[str] = "signup.account_age"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "signup"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "how long the account existed when it sent the request"

    def __init__(
        self, new_days: float = 1.0, old_days: float = 30.0, max_evidence: float = 1.2
    ) -> None:
        self.new_days = new_days
        self.old_days = old_days
        self.max_evidence = max_evidence
        self.no_account = unavailable(self, _NO_ACCOUNT)
        self.no_created = unavailable(self, "no sign-up time in the accounts file")

    def new_state(self) -> _Memo:
        return _Memo()

    def update(self, state: _Memo, exchange: Exchange, t: float) -> None:
        return None

    def evidence(self, days: float) -> float:
        """Evidence for an account ``days`` old (monotone: older is never more suspicious)."""
        if days <= self.new_days:
            return self.max_evidence
        if days <= self.old_days:
            return self.max_evidence * (
                1.0 - math.log(days / self.new_days) / math.log(self.old_days / self.new_days)
            )
        return -0.3 * min(1.0, math.log(days / self.old_days) / math.log(6.0))

    def evaluate(self, state: _Memo, ctx: EvalContext) -> SignalValue:
        account = ctx.account
        if account is None:
            return self.no_account
        if account.created_at is None:
            return self.no_created
        if state.value is None:
            state.created = account.created_at.timestamp()
        hours = max(int((ctx.now - state.created) // HOUR), 0)
        if hours != state.key or state.value is None:
            days = hours / 24
            age = f"{hours} hour{'s' if hours != 1 else ''}" if hours < 48 else f"{days:.1f} days"
            state.key = hours
            state.value = computed(
                self,
                round(days, 2),
                round(self.evidence(days), 2),
                f"account opened {age} before this request; established accounts: over "
                f"{self.old_days:.0f} days",
            )
        return state.value


@register
class Verification:
    """Identity verification (KYC): +0.2 when not done, −0.5 when done.

    Campaigns open accounts in bulk, which verification makes expensive; most ordinary
    consumers do not verify either, so the positive side is small.

    >>> from distillwatch.records import Account
    >>> sig = Verification(); st = sig.new_state()
    >>> acct = Account(account_id="a", verified=False)
    >>> sig.evaluate(st, EvalContext(now=0.0, account=acct, tier="free", exchanges=1)).evidence
    0.2
    """

    id: ClassVar[str] = "signup.verification"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "signup"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "whether the account's identity was verified"

    def __init__(self, unverified: float = 0.2, verified: float = -0.5) -> None:
        self.unverified = unverified
        self.verified = verified
        self.no_account = unavailable(self, _NO_ACCOUNT)
        self.no_status = unavailable(self, "verification status not in the accounts file")

    def new_state(self) -> _Memo:
        return _Memo()

    def update(self, state: _Memo, exchange: Exchange, t: float) -> None:
        return None

    def evaluate(self, state: _Memo, ctx: EvalContext) -> SignalValue:
        if state.value is not None:
            return state.value
        account = ctx.account
        if account is None:
            return self.no_account
        if account.verified is None:
            return self.no_status
        state.value = (
            computed(self, 1.0, self.verified, "identity verified (KYC)")
            if account.verified
            else computed(self, 0.0, self.unverified, "identity not verified (KYC)")
        )
        return state.value


class _Index:
    """Sign-up times by group key, and by (group key, organisation), each sorted."""

    def __init__(self) -> None:
        self.by_group: dict[Hashable, tuple[float, ...]] = {}
        self.by_org: dict[Hashable, tuple[float, ...]] = {}
        self.earliest = math.inf

    @classmethod
    def build(cls, accounts: Mapping[str, Account], field: str) -> _Index:
        groups: defaultdict[Hashable, list[float]] = defaultdict(list)
        orgs: defaultdict[Hashable, list[float]] = defaultdict(list)
        index = cls()
        for account in accounts.values():
            created = _created(account)
            if created > -math.inf:
                index.earliest = min(index.earliest, created)
            key = getattr(account, field)
            if not key:
                continue
            groups[key].append(created)
            if account.org_id:
                orgs[(key, account.org_id)].append(created)
        index.by_group = {k: tuple(sorted(v)) for k, v in groups.items()}
        index.by_org = {k: tuple(sorted(v)) for k, v in orgs.items()}
        return index


def _count(times: tuple[float, ...], lo: float, hi: float) -> int:
    return bisect_right(times, hi) - bisect_left(times, lo)


def _group(
    index: _Index, account: Account, key: Hashable
) -> tuple[tuple[float, ...], tuple[float, ...] | None, float]:
    """The account's group, its organisation's part of it, and its own sign-up time."""
    mine = _created(account)
    peers = index.by_group.get(key) or (mine,)
    same_org = index.by_org.get((key, account.org_id)) if account.org_id else None
    return peers, same_org, mine


@dataclass(slots=True)
class _PeerState:
    peers: tuple[float, ...] | None = None
    """Sign-up times of the accounts in this account's group (itself included), sorted."""
    same_org: tuple[float, ...] | None = None
    """The same, restricted to its organisation (None: it has none)."""
    mine: float = 0.0
    final: bool = False
    """The whole group was created before the last evaluation: the value cannot change."""
    key: float | None = None
    value: SignalValue | None = None


@register
class SharedPayment:
    """Other accounts paying with the same card (outside the account's organisation).

    Counts the accounts created before now that share the payment fingerprint; evidence
    ``min(1.5, 0.6 · ln(1 + others))`` (one other: 0.42, five: 1.08, twelve or more: 1.5).
    Needs the accounts table (``bind``); families and small teams share cards too.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Account
    >>> accts = {f"a{i}": Account(account_id=f"a{i}", payment_fingerprint="pm_1",
    ...                           created_at=datetime(2026, 3, 1, i, tzinfo=UTC)) for i in range(6)}
    >>> sig = SharedPayment(); sig.bind(accts); st = sig.new_state()
    >>> now = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    >>> v = sig.evaluate(st, EvalContext(now=now, account=accts["a0"], tier="free", exchanges=1))
    >>> v.evidence, v.explanation[:40]
    (1.08, '5 other accounts pay with the same card ')
    """

    id: ClassVar[str] = "signup.shared_payment"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "signup"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "other accounts paying with the same card"

    def __init__(self, scale: float = 0.6, max_evidence: float = 1.5) -> None:
        self.scale = scale
        self.max_evidence = max_evidence
        self.index: _Index | None = None
        self.no_account = unavailable(self, _NO_ACCOUNT)
        self.not_bound = unavailable(self, "the accounts table was not bound to the signal")
        self.no_card = unavailable(self, "no payment fingerprint in the accounts file")

    def bind(self, accounts: Mapping[str, Account]) -> None:
        """Index the accounts table by payment fingerprint (called once by the engine)."""
        self.index = _Index.build(accounts, "payment_fingerprint")

    def new_state(self) -> _PeerState:
        return _PeerState()

    def update(self, state: _PeerState, exchange: Exchange, t: float) -> None:
        return None

    def evaluate(self, state: _PeerState, ctx: EvalContext) -> SignalValue:
        if state.final and state.value is not None:
            return state.value
        account = ctx.account
        if account is None:
            return self.no_account
        if self.index is None:
            return self.not_bound
        card = account.payment_fingerprint
        if not card:
            return self.no_card
        peers = state.peers
        if peers is None:
            state.peers, state.same_org, state.mine = _group(self.index, account, card)
            peers = state.peers
        now = ctx.now - ctx.now % QUANTUM
        others = bisect_right(peers, now)
        if state.same_org is not None:
            others -= bisect_right(state.same_org, now)
        elif state.mine <= now:
            others -= 1
        state.final = now >= peers[-1]
        if others != state.key or state.value is None:
            evidence = min(self.max_evidence, self.scale * math.log1p(others))
            state.key = others
            state.value = computed(
                self,
                float(others),
                round(evidence, 2),
                f"{others} other account{' pays' if others == 1 else 's pay'} with the same "
                "card (outside its organisation); most accounts: none",
            )
        return state.value


@dataclass(slots=True)
class _BurstState:
    peers: tuple[float, ...] | None = None
    same_org: tuple[float, ...] | None = None
    mine: float = 0.0
    key: float | None = None
    value: SignalValue | None = None


@register
class SignupBurst:
    """Accounts with the same email domain opened within an hour of this one, against the usual.

    ``k`` = other accounts (created before now, outside the account's organisation) with the
    same email domain opened within ±1 h; ``λ`` = how many the domain's sign-up rate
    before now would put in two hours. Evidence ``0.5 · ln((k + 1)/(λ + 1))`` clipped to
    [0, 1.5]: a burst on a big consumer domain has to stand out from its normal traffic.

    >>> from datetime import datetime, UTC, timedelta
    >>> from distillwatch.records import Account
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> accts = {f"a{i}": Account(account_id=f"a{i}", email_domain="mail.example",
    ...                           created_at=t0 + timedelta(minutes=5 * i)) for i in range(12)}
    >>> sig = SignupBurst(); sig.bind(accts); st = sig.new_state()
    >>> ctx = EvalContext(now=(t0 + timedelta(days=2)).timestamp(), account=accts["a0"],
    ...                   tier="free", exchanges=1)
    >>> sig.evaluate(st, ctx).explanation
    '11 other accounts with the same email domain opened within 1 h of it; expected: 0.0'
    """

    id: ClassVar[str] = "signup.burst"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "signup"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "same-domain accounts opened within an hour, against the usual"

    def __init__(
        self,
        window: float = HOUR,
        min_span: float = 30 * DAY,
        scale: float = 0.5,
        max_evidence: float = 1.5,
    ) -> None:
        self.window = window
        self.min_span = min_span
        self.scale = scale
        self.max_evidence = max_evidence
        self.index: _Index | None = None
        self.no_account = unavailable(self, _NO_ACCOUNT)
        self.not_bound = unavailable(self, "the accounts table was not bound to the signal")
        self.no_domain = unavailable(self, "no email domain or sign-up time in the accounts file")

    def bind(self, accounts: Mapping[str, Account]) -> None:
        """Index the accounts table by email domain (called once by the engine)."""
        self.index = _Index.build(accounts, "email_domain")

    def new_state(self) -> _BurstState:
        return _BurstState()

    def update(self, state: _BurstState, exchange: Exchange, t: float) -> None:
        return None

    def evaluate(self, state: _BurstState, ctx: EvalContext) -> SignalValue:
        account = ctx.account
        if account is None:
            return self.no_account
        if self.index is None:
            return self.not_bound
        if not account.email_domain or account.created_at is None:
            return self.no_domain
        peers = state.peers
        if peers is None:
            state.peers, state.same_org, state.mine = _group(
                self.index, account, account.email_domain
            )
            peers = state.peers
        mine = state.mine
        # the window fills within an hour of sign-up; after that only the slowly moving
        # expectation changes, so the value is taken every six hours instead of every 15 min
        quantum = QUANTUM if ctx.now < mine + self.window + QUANTUM else 24 * QUANTUM
        now = ctx.now - ctx.now % quantum
        if state.key == now and state.value is not None:
            return state.value
        # (past the window, its end is before ``ctx.now`` rounded to 15 min: ``k`` is final)
        lo, hi = mine - self.window, min(mine + self.window, ctx.now - ctx.now % QUANTUM)
        k = _count(peers, lo, hi)
        before = bisect_right(peers, now)
        if state.same_org is not None:
            k -= _count(state.same_org, lo, hi)
            before -= bisect_right(state.same_org, now)
        elif mine <= now:
            k -= 1
            before -= 1
        span = max(now - self.index.earliest, self.min_span)
        expected = before * 2 * self.window / span
        evidence = clip(self.scale * math.log((k + 1) / (expected + 1)), 0.0, self.max_evidence)
        state.key = now
        state.value = computed(
            self,
            float(k),
            round(evidence, 2),
            f"{k} other account{'s' if k != 1 else ''} with the same email domain opened "
            f"within {self.window / HOUR:g} h of it; expected: {expected:.1f}",
        )
        return state.value
