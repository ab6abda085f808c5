"""Network signals: how many places and clients an account's requests come from.

Rotating residential proxies give a harvesting account a new exit — usually in a new
network — for every request; a person's address changes per session (VPN, mobile), an
office or school shares one address behind NAT, a backend sends from a few servers.
Churn is counted in network prefixes (/24 for IPv4, /48 for IPv6), not addresses, so IPv6
privacy addresses and a company's egress pool do not look like rotation. Sharing of
addresses *across* accounts is campaign work, not a per-account signal.

Distinct counts come from a K-minimum-values sketch (32 hashes for networks, 16 for user
agents; exact up to that many distinct items, about 1/√k relative error beyond): O(1)
memory per account however long it runs.
"""

from __future__ import annotations

import ipaddress
import zlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import ClassVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import (
    EvalContext,
    PopulationTail,
    computed,
    ramp,
    shrunk,
    unavailable,
)
from distillwatch.signals.registry import register

_MASK = 0xFFFFFFFF


def _hash32(item: str) -> int:
    """A deterministic, well-mixed 32-bit hash (CRC-32 through murmur3's finaliser)."""
    h = zlib.crc32(item.encode("utf-8", "surrogatepass"))
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


class DistinctSketch:
    """K-minimum-values distinct counter in ``k`` 32-bit integers.

    >>> s = DistinctSketch()
    >>> for i in range(10): s.add(f"198.51.100.{i % 4}")
    >>> s.estimate()
    4.0
    >>> for i in range(2000): s.add(f"item-{i}")
    >>> 1500 < s.estimate() < 2700
    True
    """

    __slots__ = ("k", "mins")

    def __init__(self, k: int = 16) -> None:
        self.k = k
        self.mins = array("I")

    def add(self, item: str) -> None:
        h = _hash32(item)
        mins = self.mins
        full = len(mins) >= self.k
        if full and h >= mins[-1]:
            return
        i = bisect_left(mins, h)
        if i < len(mins) and mins[i] == h:
            return
        mins.insert(i, h)
        if full:
            mins.pop()

    def estimate(self) -> float:
        n = len(self.mins)
        if n < self.k:
            return float(n)
        return (self.k - 1) * 4_294_967_296.0 / (self.mins[-1] + 1)


def network_prefix(ip: str) -> str:
    """The /24 of an IPv4 address or the /48 of an IPv6 one (IPv4-mapped IPv6 as IPv4).

    >>> network_prefix("203.0.113.77"), network_prefix("2001:db8:abcd:12::1")
    ('203.0.113', '2001:0db8:abcd')
    """
    if ":" not in ip:
        return ip[: ip.rfind(".")]
    try:
        addr = ipaddress.IPv6Address(ip.split("%", 1)[0])  # without a zone (fe80::1%eth0)
    except ValueError:
        return ip
    if addr.ipv4_mapped is not None:
        v4 = str(addr.ipv4_mapped)
        return v4[: v4.rfind(".")]
    return addr.exploded[:14]


@dataclass(slots=True)
class _ChurnState:
    n: int = 0
    last: str | None = None
    sketch: DistinctSketch = field(default_factory=lambda: DistinctSketch(32))
    distinct: float = 0.0
    bin: int = -1  # the population bin this account is counted in (−1: not yet)
    memo_key: tuple[int, int, float] | None = None
    memo: SignalValue | None = None


@register
class AddressChurn:
    """Distinct networks (/24, /48) per request: one per request is a rotating proxy pool.

    With ``d`` distinct prefixes over ``n`` requests, ``r = (d + 0.5) / (n + 10)`` (a prior
    worth 10 requests at 0.05, so a handful of requests from a few places is not churn);
    evidence rises linearly from 0 at ``r = 0.35`` (a VPN or mobile user changing
    address per session) to 1.5 at ``r ≥ 0.9``. Serverless backends can rotate too, so it
    is capped.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = AddressChurn(); st = sig.new_state()
    >>> for i in range(40):
    ...     e = Exchange(id=str(i), ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...                  ip=f"198.51.{i}.7", model="m")
    ...     sig.update(st, e, float(i))
    >>> v = sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40))
    >>> v.evidence, v.explanation
    (1.39, 'requests come from 1.00 distinct networks (/24, /48) per request; typical accounts: 0.10')
    """  # noqa: E501

    id: ClassVar[str] = "network.address_churn"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "network"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "distinct /24 or /48 networks per request"

    def __init__(
        self,
        min_requests: int = 5,
        prior_weight: float = 10.0,
        prior_rate: float = 0.05,
        low: float = 0.35,
        high: float = 0.9,
        max_evidence: float = 1.5,
    ) -> None:
        self.population = PopulationTail(prior=0.1)
        self.min_requests = min_requests
        self.prior_weight = prior_weight
        self.prior_rate = prior_rate
        self.low = low
        self.high = high
        self.max_evidence = max_evidence
        self.too_few = unavailable(self, f"fewer than {min_requests} requests so far")

    def new_state(self) -> _ChurnState:
        return _ChurnState()

    def update(self, state: _ChurnState, exchange: Exchange, t: float) -> None:
        state.n += 1
        ip = exchange.ip
        if ip != state.last:  # the common case, the same address again, costs nothing
            state.last = ip
            state.sketch.add(network_prefix(ip))
            state.distinct = state.sketch.estimate()
        if state.n >= self.population.min_n:
            state.bin = self.population.place(state.bin, state.distinct / state.n)

    def evaluate(self, state: _ChurnState, ctx: EvalContext) -> SignalValue:
        n = state.n
        if n < self.min_requests:
            return self.too_few
        d = state.distinct
        rate = shrunk(d, n, self.prior_rate, self.prior_weight)
        evidence = 0.0
        if rate > self.low:  # most accounts: no ``round`` to pay for
            evidence = round(self.max_evidence * ramp(rate, self.low, self.high), 2)
        ratio = min(d / n, 1.0)
        pop = self.population
        typical = pop.view()[0]
        key = (int(ratio * 100 + 0.5), pop.version, evidence)
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            pct, _, ev = key
            typical_pct = int(typical * 100 + 0.5)
            state.memo_key = key
            state.memo = computed(
                self,
                pct / 100,
                ev,
                f"requests come from {pct / 100:.2f} distinct networks (/24, /48) per "
                f"request; typical accounts: {typical_pct / 100:.2f}",
            )
        return state.memo


@dataclass(slots=True)
class _ClientState:
    n: int = 0
    last: str | None = None
    sketch: DistinctSketch = field(default_factory=DistinctSketch)
    distinct: int = 0
    memo_key: tuple[int, int, float] | None = None
    memo: SignalValue | None = None


@register
class ClientChurn:
    """Distinct user agents beyond the few a person or a program uses.

    People use a browser, a phone app and an SDK (and upgrade now and then); a program
    uses one. A fleet that fakes a fresh client per request does not. With ``d`` distinct
    user agents over ``n`` requests that carry one, ``x = max(d − 3, 0) / (n + 10)``;
    evidence rises from 0 at ``x = 0.05`` to 1.2 at ``x ≥ 0.4``.

    >>> from datetime import datetime, UTC
    >>> from distillwatch.records import Exchange
    >>> sig = ClientChurn(); st = sig.new_state()
    >>> for i in range(40):
    ...     e = Exchange(id=str(i), ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...                  ip="192.0.2.1", model="m", user_agent=f"Mozilla/5.0 Chrome/{100 + i % 12}")
    ...     sig.update(st, e, float(i))
    >>> sig.evaluate(st, EvalContext(now=40.0, account=None, tier="free", exchanges=40)).explanation
    '12 different user agents over 40 requests; people and programs use 1–3'
    """

    id: ClassVar[str] = "network.client_churn"
    version: ClassVar[int] = 1
    family: ClassVar[str] = "network"
    needs_text: ClassVar[bool] = False
    summary: ClassVar[str] = "distinct user agents beyond the few one client uses"

    def __init__(
        self,
        min_requests: int = 5,
        usual: int = 3,
        low: float = 0.05,
        high: float = 0.4,
        max_evidence: float = 1.2,
    ) -> None:
        self.min_requests = min_requests
        self.usual = usual
        self.low = low
        self.high = high
        self.max_evidence = max_evidence
        self.no_agents = unavailable(self, "no user agents in the log")
        self.too_few = unavailable(self, f"fewer than {min_requests} requests with a user agent")

    def new_state(self) -> _ClientState:
        return _ClientState()

    def update(self, state: _ClientState, exchange: Exchange, t: float) -> None:
        ua = exchange.user_agent
        if not ua:
            return
        state.n += 1
        if ua != state.last:
            state.last = ua
            state.sketch.add(ua)
            state.distinct = round(state.sketch.estimate())

    def evaluate(self, state: _ClientState, ctx: EvalContext) -> SignalValue:
        if state.n < self.min_requests:
            return self.too_few if state.n else self.no_agents
        d = state.distinct
        if d <= self.usual:
            key: tuple[int, int, float] = (d, 0, 0.0)
        else:
            x = (d - self.usual) / (state.n + 10)
            key = (d, state.n, round(self.max_evidence * ramp(x, self.low, self.high), 2))
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            state.memo_key = key
            many = f" over {state.n:,} requests" if d > self.usual else ""
            state.memo = computed(
                self,
                float(d),
                key[2],
                f"{d:,} different user agent{'s' if d != 1 else ''}{many}; "
                f"people and programs use 1–{self.usual}",
            )
        return state.memo
