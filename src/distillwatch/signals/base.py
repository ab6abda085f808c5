"""The signal contract: per-account state, updated by exchanges, evaluated to a ``SignalValue``.

A signal is a named, versioned computation with O(1) state per account (memory stays
O(accounts), never O(exchanges)). The same object serves every driver — the replay in
``scan``, the gateway, a Spark partition — because it only ever sees one exchange at a time
and the current time, never the future.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from distillwatch.records import Account, Exchange, SignalValue


@dataclass(frozen=True, slots=True)
class EvalContext:
    """What a signal may look at when it is evaluated, besides its own state."""

    now: float
    """Replay (or wall) time in seconds since the epoch; only events before it were seen."""
    account: Account | None
    tier: str
    exchanges: int
    explain: bool = True
    """False when only ``available`` and ``evidence`` will be read (the engine's re-scores,
    whose values are never shown): a signal may then leave ``explanation`` empty. Nothing
    else may differ, side effects (population refreshes, memos) included."""


@runtime_checkable
class Signal(Protocol):
    """Contract every registered signal follows (checked by ``tests/signals/test_contract.py``)."""

    id: ClassVar[str]
    version: ClassVar[int]
    family: ClassVar[str]
    needs_text: ClassVar[bool]
    """True when the signal reads prompt text, i.e. cannot be computed on metadata-only logs."""
    summary: ClassVar[str]

    def new_state(self) -> Any:
        """Fresh per-account state."""

    def update(self, state: Any, exchange: Exchange, t: float) -> None:
        """Fold one exchange (at epoch seconds ``t``) into the account's state."""

    def evaluate(self, state: Any, ctx: EvalContext) -> SignalValue:
        """The signal's value and evidence now, with a one-line human explanation."""


def unavailable(signal: Signal, why: str) -> SignalValue:
    """A value that says the signal could not be computed, and why."""
    return SignalValue(
        signal_id=signal.id,
        version=signal.version,
        value=None,
        evidence=0.0,
        explanation=f"{signal.id}: not computed ({why})",
        available=False,
    )


def computed(signal: Signal, value: float, evidence: float, explanation: str) -> SignalValue:
    """A value the signal computed, with its evidence and explanation (cf. ``unavailable``)."""
    return SignalValue(
        signal_id=signal.id,
        version=signal.version,
        value=value,
        evidence=evidence,
        explanation=explanation,
    )


def sampled(
    seen: int,
    exchange_id: str,
    *,
    first: int = 4,
    every: int = 8,
    slow_after: int = 256,
    every_slow: int = 32,
) -> bool:
    """Whether an account's ``seen``-th prompt (1-based) gets an expensive text feature.

    Per-prompt text features cost more than the rest of an exchange, and a share needs only
    a sample: an account's first ``first`` prompts, then one in ``every`` up to its
    ``slow_after``-th, then one in ``every_slow``. Which ones is decided by a CRC of the
    exchange id, which the provider assigns, so a client cannot place its extraction
    prompts between samples.

    >>> all(sampled(i, "x") for i in range(1, 5))
    True
    >>> round(sum(sampled(5, f"ex_{i}") for i in range(8000)) / 8000, 3)
    0.125
    """
    if seen <= first:
        return True
    period = every if seen <= slow_after else every_slow
    return zlib.crc32(exchange_id.encode()) % period == 0


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi``, linear between and flat beyond (``hi < lo`` ramps down).

    >>> ramp(0.2, 0.1, 0.6), ramp(0.05, 0.1, 0.6), ramp(0.25, 0.5, 0.0)
    (0.2, 0.0, 0.5)
    """
    r = (x - lo) / (hi - lo)
    return 0.0 if r < 0.0 else 1.0 if r > 1.0 else r  # ``clip``, inlined


def percent(k: int, n: int) -> int:
    """``k / n`` in whole per cent, halves rounded up (exact: integers only).

    >>> percent(1, 8), percent(1, 200), percent(1, 3)
    (13, 1, 33)
    """
    return (200 * k + n) // (2 * n)


class Memo(Protocol):
    """A state that keeps its last value and the key it is a function of."""

    memo_key: Any
    memo: SignalValue | None


def ramped_share(
    signal: Signal,
    state: Memo,
    k: int,
    n: int,
    span: tuple[float, float, float],
    explanation: str,
) -> SignalValue:
    """``k / n`` to the per cent, evidence ramped from ``lo`` to ``hi`` up to ``top``
    (``span``), rebuilt only when that per cent or evidence changes; ``explanation`` is a
    template with ``{pct}``.

    >>> from types import SimpleNamespace
    >>> sig = SimpleNamespace(id="timing.x", version=1)
    >>> st = SimpleNamespace(memo_key=None, memo=None)
    >>> v = ramped_share(sig, st, 3, 8, (0.1, 0.6, 0.6), "{pct} % sent at once")
    >>> v.value, v.evidence, v.explanation
    (0.38, 0.34, '38 % sent at once')
    """
    lo, hi, top = span
    pct = percent(k, n)
    key = (pct, round(top * ramp(pct / 100, lo, hi), 2))
    if key != state.memo_key or state.memo is None:  # the value is a function of the key
        state.memo_key = key
        state.memo = computed(signal, pct / 100, key[1], explanation.format(pct=pct))
    return state.memo


def shrunk(k: float, n: float, prior: float, weight: float) -> float:
    """The share ``k / n`` shrunk toward ``prior`` by a Beta prior worth ``weight`` observations.

    >>> shrunk(4, 4, 0.1, 4.0), shrunk(0, 0, 0.1, 4.0)
    (0.55, 0.1)
    """
    return (k + weight * prior) / (n + weight)


class PopulationShare:
    """Robust 'typical account' of a per-account share, kept causally and in O(1) per update.

    A histogram of each account's current share (accounts with at least ``min_n``
    observations); ``typical()`` is its median, so a few extreme accounts — the attackers —
    cannot drag the baseline toward themselves.

    >>> p = PopulationShare(prior=0.05)
    >>> p.typical()
    0.05
    """

    BINS = 100

    def __init__(self, prior: float, min_accounts: int = 20, min_n: int = 5) -> None:
        self.prior = prior
        self.min_accounts = min_accounts
        self.min_n = min_n
        self.counts = [0] * self.BINS
        self.accounts = 0

    def _bin(self, share: float) -> int:
        return min(int(share * self.BINS), self.BINS - 1)

    def move(self, old: float | None, new: float) -> None:
        """An account's share changed from ``old`` (None: not counted yet) to ``new``."""
        if old is None:
            self.accounts += 1
        else:
            self.counts[self._bin(old)] -= 1
        self.counts[self._bin(new)] += 1

    def typical(self) -> float:
        if self.accounts < self.min_accounts:
            return self.prior
        half, seen = self.accounts / 2, 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= half:
                return (i + 0.5) / self.BINS
        return self.prior  # pragma: no cover - counts always sum to accounts


class PopulationTail(PopulationShare):
    """``PopulationShare`` with its median and upper tail cached between refreshes.

    Accounts are moved by bin (``bin_of``; a state remembers its account's bin), so an
    update that keeps an account in its bin costs one comparison; after ``refresh`` moves
    that change a bin, ``view()`` recomputes. A prior of ``prior_accounts`` pseudo-accounts
    (``prior_tail`` of them at share 1, the rest at 0) keeps the tail finite while the
    population is small.

    >>> p = PopulationTail(prior=0.1, prior_tail=0.1, min_accounts=1, min_n=1)
    >>> for share in (0.0, 0.0, 0.0, 1.0): p.move(None, share)
    >>> typical, tails = p.view()
    >>> round(tails[p.bin_of(0.9)], 3), tails[0]
    (0.125, 1.0)
    """

    def __init__(
        self,
        prior: float,
        *,
        prior_tail: float = 0.15,
        prior_accounts: float = 20.0,
        min_accounts: int = 20,
        min_n: int = 5,
        refresh: int = 32,
    ) -> None:
        super().__init__(prior, min_accounts=min_accounts, min_n=min_n)
        self.prior_tail = prior_tail
        self.prior_accounts = prior_accounts
        self.refresh = refresh
        self._stale = refresh
        self.version = 0
        """Bumped on every refresh: what ``view()`` returns is a function of it."""
        self._typical = prior
        self._tail = [1.0] * self.BINS

    def bin_of(self, share: float) -> int:
        b = int(share * self.BINS)
        return b if b < self.BINS else self.BINS - 1

    def move(self, old: float | None, new: float) -> None:
        self.move_bin(-1 if old is None else self.bin_of(old), self.bin_of(new))

    def place(self, old: int, share: float) -> int:
        """Count an account at ``share``; it was in bin ``old`` (−1: not counted yet).

        Returns its bin now, for the caller's state: ``state.bin = pop.place(state.bin, x)``.
        """
        b = int(share * self.BINS)  # ``bin_of``, inlined: every update of seven signals
        if b >= self.BINS:
            b = self.BINS - 1
        if b != old:
            self.move_bin(old, b)
        return b

    def move_bin(self, old: int, new: int) -> None:
        """An account moved from bin ``old`` (−1: not counted yet) to bin ``new``."""
        if old == new:
            return
        if old < 0:
            self.accounts += 1
        else:
            self.counts[old] -= 1
        self.counts[new] += 1
        self._stale += 1

    def view(self) -> tuple[float, list[float]]:
        """The typical share and the tail by bin (``tails[bin_of(x)]``: share of accounts ≥ x)."""
        # small populations change a lot with each account: refresh them more often
        if self._stale >= self.refresh or self._stale > self.accounts // 4:
            self._refresh()
        return self._typical, self._tail

    def _refresh(self) -> None:
        self._stale = 0
        self.version += 1
        self._typical = super().typical()
        total = self.accounts + self.prior_accounts
        above, prior_above = 0, self.prior_accounts * self.prior_tail
        for i in range(self.BINS - 1, 0, -1):
            above += self.counts[i]
            self._tail[i] = (above + prior_above) / total
        self._tail[0] = 1.0

    def typical(self) -> float:
        return self.view()[0]

    def tail(self, share: float) -> float:
        """Fraction of accounts (prior included) whose share is at least ``share``'s bin."""
        return self.view()[1][self.bin_of(share)]

    def surprise(self, share: float, typical: float, cap: float) -> float:
        """How rare ``share`` is above ``typical``: ``ln(0.5 / tail(share))`` clipped to
        ``[0, cap]``, and 0 when ``share`` is not in a bin above ``typical``'s. Reads the
        tails of the last ``view()`` (``typical`` usually comes from it).

        >>> p = PopulationTail(prior=0.1, prior_tail=0.1, min_accounts=1, min_n=1)
        >>> for share in (0.0, 0.0, 0.0, 1.0): p.move(None, share)
        >>> round(p.surprise(0.9, p.typical(), 2.0), 3), p.surprise(0.0, 0.0, 2.0)
        (1.386, 0.0)
        """
        b = self.bin_of(share)
        if b <= self.bin_of(typical):
            return 0.0
        return min(max(math.log(0.5 / self._tail[b]), 0.0), cap)
