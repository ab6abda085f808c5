"""The signal contract: per-account state, updated by exchanges, evaluated to a ``SignalValue``.

A signal is a named, versioned computation with O(1) state per account (memory stays
O(accounts), never O(exchanges)). The same object serves every driver — the replay in
``scan``, the gateway, a Spark partition — because it only ever sees one exchange at a time
and the current time, never the future.
"""

from __future__ import annotations

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


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


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
