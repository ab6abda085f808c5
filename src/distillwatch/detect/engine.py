"""The detection engine: per-account state, every signal, the scorer and the policy.

One implementation, several drivers: ``replay`` feeds it a log in time order, the gateway
feeds it live requests, a Spark job feeds it one partition of accounts. The engine never
reads a clock of its own; the time of an event is its ``ts`` and evaluation time is
given explicitly, which is what makes every verdict causal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeGuard

from distillwatch.clock import to_datetime
from distillwatch.detect.scoring import LogOddsScorer, default_scorer
from distillwatch.records import (
    Account,
    Action,
    Decision,
    Evidence,
    Exchange,
    PolicyRef,
    Score,
    SignalValue,
    Verdict,
)
from distillwatch.signals.base import EvalContext, Signal

DEFAULT_TIER = "unknown"
DENSE_EXCHANGES = 64
"""An account is re-scored after every one of its first this-many exchanges."""
SPARSE_SHIFT = 5
"""Past ``DENSE_EXCHANGES``, an account with *n* exchanges is re-scored every
``2**(floor(log2 n) - SPARSE_SHIFT)`` exchanges: at most ~3 % of its volume late."""


class Decider(Protocol):
    """What the engine needs of a policy (``distillwatch.policy.Policy`` is one)."""

    name: str
    hash: str

    def decide(
        self, score: float, *, tier: str | None, exchanges: int, campaign: bool = False
    ) -> tuple[Action, str]: ...

    def ref(self, rule: str) -> PolicyRef: ...


class Linker(Protocol):
    """Cross-account attribution the engine consults (``distillwatch.attribute`` has one).

    The engine tells the linker every exchange, when an account is first monitored and when
    it is first acted on (throttle or stronger: ``acted`` is called with the action); the linker
    answers with campaign evidence for an account (scored like a signal's) and the
    account's campaign id. It lives in a later stage, so the engine only knows this shape.
    """

    def observe(self, exchange: Exchange, t: float) -> None: ...

    def acted(self, account_id: str, action: Action, t: float) -> None: ...

    def evidence(self, account_id: str, now: float) -> SignalValue | None: ...

    def campaign_of(self, account_id: str) -> str | None: ...


class ValuesLinker(Linker, Protocol):
    """A linker that also reads the account's own signal values (received behaviour rules:
    ``distillwatch.share.match.IntelMatcher``). The method is optional: the engine looks for
    it once, when the linker is added (``Engine(linker=…)`` or ``Engine.add_linker``), and at
    every decision point calls it with every signal's value at ``now`` (in ``signals``'
    order; read it during the call, do not keep it) before asking any linker for evidence —
    the values never include a linker's evidence, so a linker cannot feed what it reads."""

    def observe_values(
        self, account_id: str, values: Sequence[SignalValue], exchanges: int, now: float
    ) -> None: ...


def reads_values(linker: Linker) -> TypeGuard[ValuesLinker]:
    """Whether ``linker`` has the optional ``observe_values``."""
    return callable(getattr(linker, "observe_values", None))


class AccountState:
    """Everything the engine keeps about one account: O(signals), independent of its volume."""

    __slots__ = (
        "account",
        "account_id",
        "action",
        "decision",
        "due",
        "exchanges",
        "first_action_t",
        "first_action_ts",
        "reported",
        "rule",
        "served",
        "served_before_action",
        "signal_states",
        "tier",
    )

    def __init__(self, account_id: str, account: Account | None, signal_states: list[Any]) -> None:
        self.account_id = account_id
        self.account = account
        self.tier = account.tier if account and account.tier else DEFAULT_TIER
        self.signal_states = signal_states
        self.exchanges = 0
        self.served = 0
        self.action = Action.ALLOW
        self.rule = "below-thresholds"
        self.decision: Decision | None = None
        self.reported = Action.ALLOW.rank
        """Strongest action told to the linker so far."""
        self.due = 1
        """The exchange count at which the account is next re-scored (see ``observe``)."""
        self.first_action_t: float | None = None
        self.first_action_ts: datetime | None = None
        self.served_before_action: int | None = None


class Engine:
    """Observe exchanges in time order; score and decide per account, causally."""

    def __init__(
        self,
        signals: Sequence[Signal],
        policy: Decider,
        accounts: Mapping[str, Account] | None = None,
        scorer: LogOddsScorer | None = None,
        linker: Linker | Sequence[Linker] | None = None,
        dense: int = DENSE_EXCHANGES,
    ) -> None:
        self.signals = list(signals)
        # bound once: the hot loop (``observe``) and every re-score (``score``)
        self._updates = [sig.update for sig in self.signals]
        self._evaluates = [sig.evaluate for sig in self.signals]
        if linker is None:
            self.linkers: list[Linker] = []
        elif isinstance(linker, Sequence):
            self.linkers = list(linker)
        else:
            self.linkers = [linker]
        self.linker = self.linkers[0] if self.linkers else None
        """The first linker (campaign attribution, by convention); ``linkers`` has them all:
        campaigns, received intel, … — each adds its own evidence to the score."""
        self.value_linkers: list[ValuesLinker] = [x for x in self.linkers if reads_values(x)]
        """The linkers told the signal values at each decision point (``ValuesLinker``)."""
        self.dense = dense
        self.policy = policy
        self.accounts = accounts or {}
        self.scorer = scorer or default_scorer()
        for sig in self.signals:  # optional hook: signals that index the accounts table
            bind = getattr(sig, "bind", None)
            if callable(bind):
                bind(self.accounts)
        self.states: dict[str, AccountState] = {}
        self.observed = 0
        self.last_t: float | None = None

    def add_linker(self, linker: Linker) -> None:
        """Consult ``linker`` too, after those already there (``linker`` stays the first)."""
        self.linkers.append(linker)
        if reads_values(linker):
            self.value_linkers.append(linker)

    def state(self, account_id: str) -> AccountState:
        st = self.states.get(account_id)
        if st is None:
            st = AccountState(
                account_id, self.accounts.get(account_id), [s.new_state() for s in self.signals]
            )
            self.states[account_id] = st
        return st

    def observe(self, exchange: Exchange) -> Decision:
        """Fold one exchange in, then decide what applies to the account's *next* request.

        When that decision first reaches ``throttle`` or stronger, the account's
        ``first_action_ts`` becomes this exchange's time and ``exchanges_before_action`` the
        number of its exchanges served so far — this one included, since it was served
        before the decision existed.

        Scoring every signal on every exchange would cost more than observing them, so an
        account is re-scored after each of its first ``dense`` exchanges and then at a
        cadence that grows with its volume (``SPARSE_SHIFT``); in between, its last decision
        stands. ``touch`` makes the next exchange re-score (a linker does, when an account's
        campaign changes).
        """
        t = exchange.ts.timestamp()
        self.observed += 1
        self.last_t = t
        st = self.states.get(exchange.account_id)
        if st is None:
            st = self.state(exchange.account_id)
        st.exchanges += 1
        status = exchange.status  # ``exchange.served``, inlined: the hot loop
        if status is None or 200 <= status < 300:
            st.served += 1
        for update, s in zip(self._updates, st.signal_states, strict=True):
            update(s, exchange, t)
        linkers = self.linkers
        if linkers:
            for linker in linkers:
                linker.observe(exchange, t)
        decision = st.decision
        if decision is None or st.exchanges >= st.due:
            decision = self.decide(st, t)
            st.decision = decision
            n = st.exchanges
            st.due = n + self.cadence(n)
            action = decision.action
            if st.first_action_t is None and action.enforces:
                st.first_action_t = t
                st.first_action_ts = exchange.ts
                st.served_before_action = st.served
            if linkers and action.rank > st.reported:
                st.reported = action.rank  # monitor, then the first enforcement
                if action is Action.MONITOR or action.enforces:
                    for linker in linkers:
                        linker.acted(st.account_id, action, t)
        return decision

    def cadence(self, exchanges: int) -> int:
        """Exchanges until an account with ``exchanges`` so far is next re-scored.

        >>> e = Engine([], policy=None)  # type: ignore[arg-type]
        >>> [e.cadence(n) for n in (1, 64, 65, 128, 1000, 100_000)]
        [1, 1, 2, 4, 16, 2048]
        """
        if exchanges <= self.dense:
            return 1
        return max(1, 1 << (exchanges.bit_length() - 1 - SPARSE_SHIFT))

    def touch(self, account_id: str) -> None:
        """Re-score ``account_id`` at its next decision point (new cross-account evidence): now,
        when a linker touches it while observing this account's own exchange, else at its next
        exchange."""
        st = self.states.get(account_id)
        if st is not None:
            st.due = min(st.due, st.exchanges)

    def observe_batch(self, batch: Iterable[Exchange]) -> None:
        for exchange in batch:
            self.observe(exchange)

    def _values(self, st: AccountState, now: float, explain: bool) -> list[SignalValue]:
        """Every signal's value for the account at ``now``, then the linkers' evidence (a
        ``ValuesLinker`` is shown the signal values first)."""
        ctx = EvalContext(now, st.account, st.tier, st.exchanges, explain)
        values = [
            evaluate(s, ctx) for evaluate, s in zip(self._evaluates, st.signal_states, strict=True)
        ]
        if self.value_linkers:
            for reader in self.value_linkers:
                reader.observe_values(st.account_id, values, st.exchanges, now)
        for linker in self.linkers:
            linked = linker.evidence(st.account_id, now)
            if linked is not None:
                values.append(linked)
        return values

    def score(self, st: AccountState, now: float) -> Score:
        signals = tuple(self._values(st, now, True))
        return Score(account_id=st.account_id, score=self.scorer.score(signals), signals=signals)

    def rescore(self, st: AccountState, now: float) -> float:
        """``score(st, now).score``, without the explanations a re-score never shows
        (``EvalContext.explain``): what every decision point costs."""
        return self.scorer.score(self._values(st, now, False))

    def decide(self, st: AccountState, now: float) -> Decision:
        """The policy's action for the account at ``now``, from what was observed before."""
        score = self.rescore(st, now)
        action, rule = self._policy_decide(st, score)
        st.action, st.rule = action, rule
        return Decision(
            account_id=st.account_id,
            action=action,
            score=score,
            rule=rule,
            policy=self.policy.name,
            policy_hash=self.policy.hash,
        )

    def _policy_decide(self, st: AccountState, score: float) -> tuple[Action, str]:
        """The policy's answer; an account in a detected campaign says so (the policy may
        then act before the account's own ``min_exchanges``)."""
        if not self.linkers:
            return self.policy.decide(score, tier=st.tier, exchanges=st.exchanges)
        campaign = self.campaign_of(st.account_id) is not None
        return self.policy.decide(score, tier=st.tier, exchanges=st.exchanges, campaign=campaign)

    def campaign_of(self, account_id: str) -> str | None:
        """The account's campaign according to the first linker that places it in one."""
        for linker in self.linkers:
            cid = linker.campaign_of(account_id)
            if cid is not None:
                return cid
        return None

    def verdict(self, st: AccountState, now: float) -> Verdict:
        """The spec's verdict for one account at ``now`` (normally the end of the log)."""
        score = self.score(st, now)
        action, rule = self._policy_decide(st, score.score)
        return Verdict(
            account_id=st.account_id,
            score=round(score.score, 6),
            action=action,
            campaign_id=self.campaign_of(st.account_id),
            first_action_ts=st.first_action_ts,
            exchanges_before_action=st.served_before_action,
            reasons=score.reasons(self.scorer.contributions(score.signals)),
            evidence=Evidence(
                exchanges=st.exchanges,
                signals={v.signal_id: v.value for v in score.signals},
                unavailable=score.unavailable,
                policy=self.policy.ref(rule),
            ),
        )

    def verdicts(self, now: float | None = None) -> Iterator[Verdict]:
        """A verdict for every account observed or known from the accounts file, at ``now``.

        ``now`` defaults to the last event. Known accounts that sent nothing get a verdict too
        (no evidence, so the policy allows them), so every account has a line.
        """
        at = now if now is not None else (self.last_t or 0.0)
        for account_id in self.accounts:
            self.state(account_id)
        for st in self.states.values():
            yield self.verdict(st, at)

    @property
    def now(self) -> datetime | None:
        return to_datetime(self.last_t) if self.last_t is not None else None
