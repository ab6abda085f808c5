"""Lockstep: requests sent in the same instant as those of many other accounts.

One scheduler driving many accounts dispatches work in batches: a batch leaves at once, one
request per account, so its accounts' requests land within the same second again and again.
People and independent programs do not coincide like that, except on the clock: crontab
fires on whole minutes, so a crowd at second 0 is the clock, not an operator. This is the
cross-account timing evidence of SynchroTrap (Cao et al., CCS 2014) and CopyCatch (Beutel
et al., WWW 2013), kept causal and in O(1) per exchange: the signal holds the accounts of
the current ``window`` only, and settles a window's accounts when time moves past it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, ramped_share, unavailable
from distillwatch.signals.registry import register

RATE_TAU = 600.0
"""Seconds over which the background request rate is averaged (exponential decay)."""

K = TypeVar("K", bound=Hashable)
Settled = tuple[K, float, bool, tuple[K, ...]]
"""A settled request: its sender, time, whether it was in a burst, and if so the burst's
senders (within half a window of it)."""


class Bursts(Generic[K]):
    """Which requests were sent in a crowd: many other senders within half a ``window``.

    Feed every request in time order (``add``). A request is settled once time has moved
    ``window / 2`` past it, so everything around it has been seen; it is *in a burst* when
    the requests within ``window / 2`` of it (a sliding window centred on it, so a batch that
    straddles a second boundary is not cut in two) come from at least ``min_accounts``
    distinct senders and from more than ``sigmas`` Poisson standard deviations above what
    the background request rate (all senders, averaged over ``RATE_TAU``) puts in a window
    by chance, so a busy provider's ordinary traffic is never one. Requests within
    ``clock_slack`` seconds of a whole minute never are: scheduled jobs fire on the clock.
    With ``unit``, senders count as their unit (an organisation's accounts as one: its own
    fleet of workers is not a crowd).
    Memory: the requests of the last ``window`` or so.

    >>> b: Bursts[str] = Bursts(min_accounts=3)
    >>> for i, who in enumerate("abcd"): _ = b.add(who, 100.2 + 0.1 * i)
    >>> [(who, hit, around) for who, t, hit, around in b.add("a", 107.0)][:2]
    [('a', True, ('a', 'b', 'c', 'd')), ('b', True, ('a', 'b', 'c', 'd'))]
    """

    def __init__(
        self,
        window: float = 1.0,
        min_accounts: int = 6,
        sigmas: float = 5.0,
        clock_slack: float = 1.0,
        unit: Callable[[K], Hashable] | None = None,
    ) -> None:
        self.window = window
        self.unit = unit
        """What counts as one sender (an organisation's accounts as one), when not itself."""
        self.half = window / 2
        self.min_accounts = min_accounts
        self.sigmas = sigmas
        self.clock_slack = clock_slack
        self._reset()

    def _reset(self) -> None:
        self._times: list[float] = []
        self._senders: list[K] = []
        self._next = 0
        """Index of the oldest request not settled yet."""
        self._lo = 0
        self._hi = 0
        """The requests ``[lo, hi)`` are those around the one being settled…"""
        self._around: dict[K, int] = {}
        """…and these their senders (requests each)."""
        self._rate = 0.0
        self._rate_t: float | None = None

    def add(self, sender: K, t: float) -> list[Settled[K]]:
        """Count one request of ``sender`` at ``t``; the requests it settles, oldest first:
        (sender, time, in a burst, and then the senders around it — itself included)."""
        if self._times and t < self._times[-1] - self.window:
            self._reset()  # time went back (a new replay): what is pending can never settle
        if self._rate_t is None or t > self._rate_t:
            if self._rate_t is not None:
                self._rate *= math.exp(-(t - self._rate_t) / RATE_TAU)
            self._rate_t = t
        self._rate += 1.0 / RATE_TAU
        times, senders, around, half = self._times, self._senders, self._around, self.half
        unit = self.unit
        settled: list[Settled[K]] = []
        if self._next < len(times) and times[self._next] + half < t:
            need = self.threshold()
            while self._next < len(times) and times[self._next] + half < t:
                at = times[self._next]
                while self._hi < len(times) and times[self._hi] <= at + half:
                    who = senders[self._hi]
                    around[who] = around.get(who, 0) + 1
                    self._hi += 1
                while times[self._lo] < at - half:
                    who = senders[self._lo]
                    left = around[who] - 1
                    if left:
                        around[who] = left
                    else:
                        del around[who]
                    self._lo += 1
                if (
                    len(around) >= need
                    and not self.on_clock(at)
                    and (unit is None or len({unit(who) for who in around}) >= need)
                ):
                    settled.append((senders[self._next], at, True, tuple(around)))
                else:
                    settled.append((senders[self._next], at, False, ()))
                self._next += 1
            if self._lo > 4096:  # forget what no future request can be near
                del times[: self._lo], senders[: self._lo]
                self._next -= self._lo
                self._hi -= self._lo
                self._lo = 0
        times.append(t)
        senders.append(sender)
        return settled

    def threshold(self) -> int:
        """How many distinct senders around a request make a burst at the background rate.

        >>> Bursts().threshold()
        6
        """
        mu = self._rate * self.window
        return max(self.min_accounts, math.ceil(mu + self.sigmas * math.sqrt(mu) + 1.0))

    def on_clock(self, t: float) -> bool:
        """Whether ``t`` lies within ``clock_slack`` seconds of a whole minute.

        >>> Bursts().on_clock(60.4), Bursts().on_clock(59.5), Bursts().on_clock(30.0)
        (True, True, False)
        """
        into = t % 60.0
        return into < self.clock_slack or into > 60.0 - self.clock_slack


@dataclass(slots=True, eq=False)
class _LockState:
    settled: int = 0
    """Requests whose window has passed."""
    hits: int = 0
    """…of them sent in a crowded window (a burst of other accounts, off the clock)."""
    unit: Hashable = None
    """The account's organisation, once an evaluation has seen it (else the state itself)."""
    memo_key: tuple[int, float] = (-1, 0.0)
    memo: SignalValue | None = field(default=None, repr=False)


def _unit(state: _LockState) -> Hashable:
    return state if state.unit is None else state.unit


@register
class Lockstep:
    """Share of requests sent in a ``window`` shared with a burst of other accounts.

    Windows and bursts are ``Bursts``'s (at least ``min_accounts`` accounts, ``sigmas``
    above the background, never on the clock's whole minutes). Evidence
    rises from 0 at ``low`` to ``max_evidence`` at ``high`` and is never negative: an
    account of a batch-driven hydra sends nearly all its requests in bursts, a heavy app
    backend only the few that fall in someone else's burst by chance. The accounts of one
    organisation (``org_id``, learnt at the account's first evaluation) count as one: its
    own fleet of workers driven by one scheduler is not a crowd.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = Lockstep(); states = [sig.new_state() for _ in range(8)]
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...              ip="192.0.2.1", model="m")
    >>> for batch in range(12):  # 8 accounts, each once per batch, 3 s apart
    ...     for i, st in enumerate(states):
    ...         sig.update(st, e, 999_970.0 + 3 * batch + 0.05 * i)
    >>> sig.update(sig.new_state(), e, 1_000_200.0)  # time moves on: the last batch settles
    >>> v = sig.evaluate(states[0], EvalContext(now=1_000_200.0, account=None, tier="free",
    ...                                          exchanges=12))
    >>> v.value, v.evidence
    (1.0, 1.5)
    """

    id: ClassVar[str] = "timing.lockstep"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "timing"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "share of requests sent in the same second as many other accounts"

    def __init__(
        self,
        window: float = 1.0,
        min_accounts: int = 6,
        sigmas: float = 5.0,
        clock_slack: float = 1.0,
        min_requests: int = 10,
        low: float = 0.2,
        high: float = 0.7,
        max_evidence: float = 1.5,
    ) -> None:
        self.min_requests = min_requests
        self.low = low
        self.high = high
        self.max_evidence = max_evidence
        self.too_few = unavailable(self, f"fewer than {min_requests} requests settled so far")
        self.bursts: Bursts[_LockState] = Bursts(
            window, min_accounts, sigmas, clock_slack, unit=_unit
        )

    def new_state(self) -> _LockState:
        return _LockState()

    def update(self, state: _LockState, exchange: Exchange, t: float) -> None:
        for st, _, hit, _ in self.bursts.add(state, t):
            st.settled += 1
            if hit:
                st.hits += 1

    def evaluate(self, state: _LockState, ctx: EvalContext) -> SignalValue:
        if state.unit is None and ctx.account is not None and ctx.account.org_id:
            state.unit = ("org", ctx.account.org_id)
        if state.settled < self.min_requests:
            return self.too_few
        return ramped_share(
            self,
            state,
            state.hits,
            state.settled,
            (self.low, self.high, self.max_evidence),
            "{pct} % of requests were sent in the same second as a burst of other accounts; "
            "independent users coincide by chance only",
        )
