"""The receiver's own view of an account, without received intel: what corroborates one member.

A match from a single member only tips (``monitor``) unless a *local* signal agrees
(``TrustPolicy.local_min_score``): the account is in a campaign another linker detected, or
its score from our own signals and the other linkers' evidence — intel's own evidence left
out, so intel can never corroborate itself — reaches the bar. ``IntelMatcher.attach`` wires
this into an engine; every driver (replay, gateway) plugs intel in through it.
"""

from __future__ import annotations

from distillwatch.detect import Engine
from distillwatch.detect.engine import AccountState
from distillwatch.records import SignalValue
from distillwatch.signals.base import EvalContext


class LocalSignal:
    """Whether our own detection agrees with received intel about an account."""

    def __init__(self, engine: Engine, exclude: object, min_score: float) -> None:
        self.engine = engine
        self.exclude = exclude
        """The intel linker, whose evidence is left out."""
        self.min_score = min_score

    def __call__(self, account_id: str, now: float) -> bool:
        """A detected local campaign, or the local score at least ``min_score``."""
        others = [x for x in self.engine.linkers if x is not self.exclude]
        if any(x.campaign_of(account_id) is not None for x in others):
            return True
        st = self.engine.states.get(account_id)
        return st is not None and self.score(st, now) >= self.min_score

    def score(self, st: AccountState, now: float) -> float:
        """The account's score at ``now`` from everything but received intel."""
        engine = self.engine
        ctx = EvalContext(now=now, account=st.account, tier=st.tier, exchanges=st.exchanges)
        values: list[SignalValue] = [
            sig.evaluate(s, ctx) for sig, s in zip(engine.signals, st.signal_states, strict=True)
        ]
        for linker in engine.linkers:
            if linker is not self.exclude:
                v = linker.evidence(st.account_id, now)
                if v is not None:
                    values.append(v)
        return engine.scorer.score(values)
