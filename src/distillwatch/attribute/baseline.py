"""How many sign-ups make a burst: each email domain against its own recent sign-up rate.

A sign-up key (``keys.account_keys``: a domain and a 6-hour window) counts only as a burst.
Six accounts of a small company's domain in six hours is one; six ``gmail.com`` accounts is
what a big provider sees every few windows by chance, and a legitimate customer who opened
an account in such a window would share a strong key with whatever campaign filled it. So
the bar for a domain's window is the smallest count that the domain's own sign-up rate over
the ``LOOKBACK`` before the window reaches by chance with probability at most ``ALPHA``
(Poisson), and never below ``keys.MIN_UNITS``. Only accounts created before the window count
(causal), from the accounts table the linker was given.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Final

from distillwatch.attribute.keys import MIN_UNITS, SIGNUP_WINDOW
from distillwatch.records import Account

LOOKBACK: Final = 30 * 86_400.0
ALPHA: Final = 1e-4
"""Chance that a window reaches the bar by the domain's usual rate alone: thousands of
domain-windows a month, so about one chance burst among them."""


def poisson_bar(rate: float, floor: int, alpha: float = ALPHA) -> int:
    """The smallest ``k ≥ floor`` with P(Poisson(rate) ≥ k) ≤ ``alpha``.

    >>> poisson_bar(0.01, 6), poisson_bar(1.35, 6), poisson_bar(10.0, 6)
    (6, 8, 25)
    """
    k, term, below = 0, math.exp(-rate), 0.0  # term: P(X = k); below: P(X < k)
    while True:
        if k >= floor and 1.0 - below <= alpha:
            return k
        below += term
        k += 1
        term *= rate / k


class SignupBaseline:
    """Per-domain sign-up times from an accounts table, and the burst bar they imply.

    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> table = {f"a{i}": Account(account_id=f"a{i}", email_domain="gmail.com",
    ...                           created_at=t0 - timedelta(hours=2 * i)) for i in range(360)}
    >>> base = SignupBaseline(table)
    >>> base.bar("signup:gmail.com:82053"), base.bar("signup:rare.io:82053"), base.bar("ip:x")
    (12, 6, None)
    """

    def __init__(self, accounts: Mapping[str, Account]) -> None:
        times: dict[str, list[float]] = {}
        for account in accounts.values():
            if account.email_domain and account.created_at is not None:
                times.setdefault(account.email_domain, []).append(account.created_at.timestamp())
        for ts in times.values():
            ts.sort()
        self.times = times
        self.floor = MIN_UNITS["signup"]

    def bar(self, key: str) -> int | None:
        """Units a sign-up key needs to count (None for other keys)."""
        if not key.startswith("signup:"):
            return None
        domain, _, window = key[7:].rpartition(":")
        ts = self.times.get(domain)
        if not ts:
            return self.floor
        shifted = window.endswith("+")
        start = int(window.rstrip("+")) * SIGNUP_WINDOW - (SIGNUP_WINDOW / 2 if shifted else 0.0)
        before = bisect.bisect_left(ts, start) - bisect.bisect_left(ts, start - LOOKBACK)
        return poisson_bar(before * SIGNUP_WINDOW / LOOKBACK, self.floor)
