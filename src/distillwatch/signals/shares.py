"""Share signals: how often an account's requests have some property, against the population.

Several signals count the requests of an account that have some property (long-output
settings, no earlier turns, a newly released model) and compare that share with the
population's typical account (``base.PopulationTail``). ``ShareSignal`` holds what they have
in common: the population, the unavailable values before ``min_requests``, and ``evaluate``,
which rounds the share to the per cent, weighs it as at most ``max_weight`` requests and
asks the subclass's ``judge`` for a new value only when that key or the population's
version changed. ``update`` stays the subclass's own, flat (it runs on every exchange): it
counts ``state.n`` and ``state.hits`` and, from ``population.min_n`` requests on, keeps the
account's bin: ``state.bin = self.population.place(state.bin, state.hits / state.n)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import update_wrapper
from types import FunctionType
from typing import Any, ClassVar, Generic, TypeVar

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, PopulationTail, unavailable


@dataclass(slots=True)
class ShareState:
    n: int = 0
    """Requests counted."""
    hits: int = 0
    """Of which with the property."""
    bin: int = -1
    """The population bin this account is counted in (−1: not yet)."""
    memo_key: tuple[int, ...] | None = None
    memo: SignalValue | None = None


S = TypeVar("S", bound=ShareState)


class ShareSignal(Generic[S]):
    """A share of an account's requests against the population's median and upper tail.

    Subclasses set the signal's class variables and ``state_type``, count in ``update`` and
    say in ``judge`` what a key means; ``key`` and ``missing`` may be overridden.
    """

    id: ClassVar[str]
    version: ClassVar[int]
    family: ClassVar[str]
    needs_text: ClassVar[bool]
    summary: ClassVar[str]
    state_type: type[S]

    def __init__(
        self,
        population: PopulationTail,
        *,
        min_requests: int,
        prior_weight: float,
        max_weight: int,
        no_data: str,
        too_few: str,
    ) -> None:
        self.population = population
        self.min_requests = min_requests
        self.prior_weight = prior_weight
        self.max_weight = max_weight
        self.no_data = unavailable(self, no_data)
        self.too_few = unavailable(self, too_few)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "evaluate" not in vars(cls):
            cls.evaluate = _own_copy(ShareSignal.evaluate, cls)  # type: ignore[method-assign]

    def new_state(self) -> S:
        return self.state_type()

    def update(self, state: S, exchange: Exchange, t: float) -> None:
        """Count the exchange (the subclass's own: it runs on every exchange, so it is flat)."""
        raise NotImplementedError

    def evaluate(self, state: S, ctx: EvalContext) -> SignalValue:
        n = state.n
        if n < self.min_requests:
            return self.missing(state)
        pop = self.population
        typical, tails = pop.view()
        # an integer key first: heavy accounts' shares settle, so most calls end here
        pct = (200 * state.hits + n) // (2 * n)  # ``percent``, inlined
        m = n if n < self.max_weight else self.max_weight
        key = self.key(state, pct, m, pop.version)
        if key != state.memo_key or state.memo is None:  # the value is a function of the key
            state.memo_key = key
            state.memo = self.judge(key, typical, tails)
        return state.memo

    def missing(self, state: S) -> SignalValue:
        """The value while fewer than ``min_requests`` requests were counted."""
        return self.too_few if state.n else self.no_data

    def key(self, state: S, pct: int, m: int, version: int) -> tuple[int, ...]:
        """What the value is a function of: the share in per cent, the weight ``m`` it has
        against the prior, the population's version (and whatever else the subclass adds)."""
        return pct, m, version

    def judge(self, key: tuple[int, ...], typical: float, tails: list[float]) -> SignalValue:
        """The value for ``key``, with the population's typical share and tails by bin."""
        raise NotImplementedError

    def shrink(self, pct: int, m: int, typical: float) -> float:
        """The share (``pct`` per cent of ``m`` requests) shrunk toward ``typical``."""
        w = self.prior_weight  # ``base.shrunk``, inlined
        return (pct / 100 * m + w * typical) / (m + w)


def _own_copy(f: Callable[..., Any], cls: type) -> Callable[..., Any]:
    """``f`` with a code object of its own, as a method of ``cls``.

    CPython (3.11+) caches attribute lookups per code object; one ``evaluate`` serving
    several classes of signal and state keeps missing those caches (measured: 10-20 %
    slower per call than a copy per class).
    """
    code = f.__code__.replace()  # a new code object: caches of its own
    own = FunctionType(code, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    update_wrapper(own, f)
    own.__qualname__ = f"{cls.__qualname__}.{f.__name__}"
    return own
