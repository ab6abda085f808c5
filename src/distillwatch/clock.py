"""Injected clocks: wall time for live use, a settable clock for replay and tests.

Nothing in distillwatch calls ``datetime.now()`` directly; components take a ``Clock``
so that replays and tests are deterministic.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of the current time as seconds since the Unix epoch."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time (the gateway)."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to (replay drivers and tests).

    >>> c = ManualClock(10.0)
    >>> c.advance_to(12.5); c.now()
    12.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        """Move forward to ``t``; a clock never goes backwards."""
        if t > self._now:
            self._now = t


def to_datetime(epoch_s: float) -> datetime:
    """Seconds since the epoch to an aware UTC datetime."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def format_rfc3339(dt: datetime) -> str:
    """RFC 3339 with millisecond precision and a ``Z`` suffix, as the spec's examples write it."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
