"""Behavioural signatures as portable detection rules over distillwatch's signals.

A rule is the third indicator form of the ``distillwatch`` pattern language (one line)::

    behaviour-rule v=1 group=<sharing group> min_exchanges=<n>
                   all=<signal id>@<version><op><number>,…      (op: >= or <=)

It matches an account that made at least ``min_exchanges`` exchanges and whose value of every
listed signal, at exactly that signal version, satisfies its bound. A receiver that runs a
different version of a signal (or lacks it) cannot evaluate the rule and never matches it.

``derive_rule`` writes one from a campaign: a signal enters when the campaign's accounts are
separated from every other local account — its 10th percentile above the others' 99th
(``>=``), or its 90th below their 1st (``<=``) — with the campaign's percentile as the bound;
the most separated ``MAX_CONDITIONS`` are kept and a rule needs ``MIN_CONDITIONS``. Values are
aggregate behaviour of the attacking accounts, never identifiers or text.

A receiver matches rules live (``RuleTable``): compiled once against the engine's signal
layout, each rule filed under its first condition's signal, sorted by bound, so a decision
point costs one bisection per (signal, operator) some rule reads plus a check of the rules
whose first condition holds. A rule that reads a signal we do not run, or another version of
one, is skipped when it is indexed (``BehaviourRule.unusable``).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from distillwatch.share.errors import IntelError

MIN_CONDITIONS: Final = 2
MAX_CONDITIONS: Final = 4
_COND = re.compile(r"^([a-z0-9_.]+)@(\d+)(>=|<=)(-?\d+(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Condition:
    signal: str
    version: int
    op: str
    bound: float

    def render(self) -> str:
        return f"{self.signal}@{self.version}{self.op}{self.bound:g}"

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.bound if self.op == ">=" else value <= self.bound


@dataclass(frozen=True, slots=True)
class BehaviourRule:
    group: str
    min_exchanges: int
    conditions: tuple[Condition, ...]

    def render(self) -> str:
        conds = ",".join(c.render() for c in self.conditions)
        return (
            f"behaviour-rule v=1 group={self.group} min_exchanges={self.min_exchanges} all={conds}"
        )

    def matches(
        self, values: Mapping[str, float | None], versions: Mapping[str, int], exchanges: int
    ) -> bool:
        """Whether an account with these signal values (local versions) matches.

        >>> r = parse_rule({"group": "g", "min_exchanges": "5",
        ...                 "all": "a.x@1>=0.5,b.y@2<=3"})
        >>> r.matches({"a.x": 0.7, "b.y": 1.0}, {"a.x": 1, "b.y": 2}, 9)
        True
        >>> r.matches({"a.x": 0.7, "b.y": 1.0}, {"a.x": 1, "b.y": 3}, 9)
        False
        """
        if exchanges < self.min_exchanges:
            return False
        return all(
            versions.get(c.signal) == c.version and c.holds(values.get(c.signal))
            for c in self.conditions
        )

    def unusable(self, versions: Mapping[str, int]) -> str | None:
        """Why a receiver running these signal versions can never match the rule (``None``:
        it can).

        >>> r = parse_rule({"group": "g", "min_exchanges": "5", "all": "a.x@1>=0.5,b.y@2<=3"})
        >>> r.unusable({"a.x": 1, "b.y": 2}) is None
        True
        >>> r.unusable({"a.x": 1, "b.y": 1})
        'reads b.y@2, newer than ours (v1)'
        >>> r.unusable({"b.y": 2})
        'reads a.x, a signal we do not run'
        """
        for c in self.conditions:
            ours = versions.get(c.signal)
            if ours is None:
                return f"reads {c.signal}, a signal we do not run"
            if c.version > ours:
                return f"reads {c.signal}@{c.version}, newer than ours (v{ours})"
            if c.version < ours:
                return f"reads {c.signal}@{c.version}, older than ours (v{ours})"
        return None


@functools.cache
def local_versions() -> Mapping[str, int]:
    """The version of every signal this installation runs (the registry's), by signal id."""
    from distillwatch.signals import create_signals

    return {s.id: s.version for s in create_signals()}


class Valued(Protocol):
    """What a rule reads of one signal's result (``records.SignalValue`` is one)."""

    @property
    def value(self) -> float | None: ...


R = TypeVar("R")
_Entry = tuple[R, int, tuple[tuple[int, bool, float], ...]]
"""What a rule matches to, its ``min_exchanges``, its other conditions (position, ``>=``?,
bound)."""


class RuleTable(Generic[R]):
    """Rules compiled against one engine's signal layout (the signal id and version at each
    position of its values), for matching at decision points.

    Each rule is filed under its first condition, in a list sorted by bound: the rules whose
    first condition a value satisfies are one bisection away (``>=``: bounds up to the value;
    ``<=``: from it on), and only those are checked further. A rule reading a signal the
    layout lacks, or another version, is left out (it can never match).

    >>> r = parse_rule({"group": "g", "min_exchanges": "5", "all": "a.x@1>=0.5,b.y@2<=3"})
    >>> t = RuleTable([("R", r)], (("b.y", 2), ("a.x", 1)))
    >>> from types import SimpleNamespace as V
    >>> t.match([V(value=1.0), V(value=0.7)], 9), t.match([V(value=4.0), V(value=0.7)], 9)
    (['R'], [])
    >>> t.match([V(value=1.0), V(value=0.4)], 9), t.match([V(value=1.0), V(value=0.7)], 4)
    ([], [])
    """

    def __init__(
        self, rules: Iterable[tuple[R, BehaviourRule]], layout: Sequence[tuple[str, int]]
    ) -> None:
        where = {sid: (i, version) for i, (sid, version) in enumerate(layout)}
        filed: dict[tuple[int, bool], list[tuple[float, _Entry[R]]]] = {}
        self.size = 0
        for target, rule in rules:
            conds = []
            for c in rule.conditions:
                at = where.get(c.signal)
                if at is None or at[1] != c.version:
                    break
                conds.append((at[0], c.op == ">=", c.bound))
            else:
                (pos, ge, bound), rest = conds[0], tuple(conds[1:])
                filed.setdefault((pos, ge), []).append((bound, (target, rule.min_exchanges, rest)))
                self.size += 1
        self._anchors: list[tuple[int, bool, list[float], list[_Entry[R]]]] = []
        for (pos, ge), items in sorted(filed.items(), key=lambda kv: kv[0]):
            items.sort(key=lambda item: item[0])
            bounds = [b for b, _ in items]
            self._anchors.append((pos, ge, bounds, [e for _, e in items]))

    def match(self, values: Sequence[Valued], exchanges: int) -> list[R]:
        """The rules an account with these values (in the layout's order) and this many
        exchanges satisfies."""
        out: list[R] = []
        for pos, ge, bounds, entries in self._anchors:
            v = values[pos].value
            if v is None:
                continue
            if ge:
                candidates = entries[: bisect.bisect_right(bounds, v)]
            else:
                candidates = entries[bisect.bisect_left(bounds, v) :]
            for target, min_exchanges, rest in candidates:
                if exchanges < min_exchanges:
                    continue
                for p, is_ge, b in rest:
                    x = values[p].value
                    if x is None or (x < b if is_ge else x > b):
                        break
                else:
                    out.append(target)
        return out


def parse_rule(fields: Mapping[str, str]) -> BehaviourRule:
    """A rule from its pattern fields (``pattern.parse`` checks ``v`` and ``group``)."""
    n = fields.get("min_exchanges", "")
    if not n.isdigit():
        raise IntelError(f"min_exchanges must be a count, not {n!r}")
    conds = []
    for part in fields.get("all", "").split(","):
        m = _COND.match(part)
        if m is None:
            raise IntelError(f"bad rule condition {part!r} (signal@version>=number)")
        conds.append(Condition(m[1], int(m[2]), m[3], float(m[4])))
    if not MIN_CONDITIONS <= len(conds) <= MAX_CONDITIONS:
        raise IntelError(f"a rule has {MIN_CONDITIONS} to {MAX_CONDITIONS} conditions")
    return BehaviourRule(fields.get("group", ""), int(n), tuple(conds))


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def derive_rule(
    members: Sequence[Mapping[str, float | None]],
    others: Sequence[Mapping[str, float | None]],
    versions: Mapping[str, int],
    *,
    group: str,
    min_exchanges: int,
) -> BehaviourRule | None:
    """A rule separating a campaign's accounts (``members``' signal values) from the rest.

    >>> camp = [{"s.a": 0.8 + i / 100, "s.b": 1.0} for i in range(10)]
    >>> rest = [{"s.a": i / 200, "s.b": 50.0 + i} for i in range(100)]
    >>> derive_rule(camp, rest, {"s.a": 1, "s.b": 1}, group="g", min_exchanges=20).render()
    'behaviour-rule v=1 group=g min_exchanges=20 all=s.a@1>=0.81,s.b@1<=1'
    """
    if len(members) < 3 or len(others) < 20:
        return None
    scored: list[tuple[float, Condition]] = []
    for signal, version in sorted(versions.items()):
        mine = [v for m in members if (v := m.get(signal)) is not None]
        theirs = [v for o in others if (v := o.get(signal)) is not None]
        if len(mine) < 0.8 * len(members) or len(theirs) < 20:
            continue
        spread = (_quantile(theirs, 0.99) - _quantile(theirs, 0.01)) or 1.0
        low, high = _quantile(mine, 0.1), _quantile(mine, 0.9)
        if low > _quantile(theirs, 0.99):
            gap = (low - _quantile(theirs, 0.99)) / spread
            scored.append((gap, Condition(signal, version, ">=", round(low, 4))))
        elif high < _quantile(theirs, 0.01):
            gap = (_quantile(theirs, 0.01) - high) / spread
            scored.append((gap, Condition(signal, version, "<=", round(high, 4))))
    scored.sort(key=lambda x: (-x[0], x[1].signal))
    conds = tuple(sorted((c for _, c in scored[:MAX_CONDITIONS]), key=lambda c: c.signal))
    if len(conds) < MIN_CONDITIONS:
        return None
    return BehaviourRule(group, min_exchanges, conds)
