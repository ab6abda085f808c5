"""Matches local accounts against received intel; evidence for the engine; sightings back.

``IntelMatcher`` is shaped like the engine's ``Linker``: it sees every exchange (addresses,
networks, clients, sampled prompt edges) and every account's sign-up data (card, e-mail
domain); behaviour rules are matched against an account's signal values at each of the
engine's decision points (``observe_values``, the engine's ``ValuesLinker`` hook: the values
as of that point, without any linker's evidence, so intel never feeds the values its rules
read) or a finished scan's (``observe_signals``); and ``evidence`` is a ``SignalValue``
(``intel.match``, weighed by the trust policy: "matches 3 indicators from member-b (confidence
80)", a rule counted as an indicator). ``attach`` plugs a matcher into an engine — the one
wiring for every driver — including the local signal that lets one member's match be acted
on when our own detection agrees (``share.local``) and, with ``ceiling=True``, the ceiling: an
action only intel pushed above ``monitor`` is held at ``monitor`` unless the match is
corroborated (``scan --intel`` and the gateway). ``sightings`` are the STIX sightings to
send back to each indicator's publisher. The index itself is ``distillwatch.share.index``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import msgspec
import stix2

from distillwatch.detect import Engine
from distillwatch.detect.engine import AccountState
from distillwatch.records import Account, Action, Decision, Exchange, SignalValue, Verdict
from distillwatch.share.index import ImportStats, IndicatorRef, IntelIndex
from distillwatch.share.local import LocalSignal
from distillwatch.share.sign import identity_id
from distillwatch.share.trust import TrustPolicy
from distillwatch.signals.text import last_user_text

SIGNAL_ID: Final = "intel.match"
SIGNAL_VERSION: Final = 1
CEILING_RULE: Final = "intel.ceiling"
"""The rule of a decision the ceiling held at ``monitor``."""

__all__ = [
    "CEILING_RULE",
    "SIGNAL_ID",
    "ImportStats",
    "IndicatorRef",
    "IntelIndex",
    "IntelMatcher",
]


@dataclass
class _Hits:
    refs: dict[str, IndicatorRef] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0
    last_ip: str | None = None
    last_agent: str | None = None
    n: int = 0
    generation: int = -1
    """The index generation the account's sign-up attributes were last matched against."""
    rules: frozenset[str] = frozenset()
    """Behaviour rules the account has matched (in ``refs``: they count as sightings)."""
    unmet: frozenset[str] = frozenset()
    """Those of ``rules`` its signal values did not satisfy at the last decision point."""


class IntelMatcher:
    """Matches accounts against an ``IntelIndex`` (the engine's ``Linker`` shape)."""

    def __init__(
        self,
        index: IntelIndex,
        policy: TrustPolicy,
        accounts: Mapping[str, Account] | None = None,
        *,
        sketch_first: int = 8,
        sketch_every: int = 32,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.index = index
        self.on_change = on_change
        """Called with an account id when it matches a new indicator (give it ``Engine.touch``)."""
        self.policy = policy
        self.accounts = accounts or {}
        self.sketch_first = sketch_first
        self.sketch_every = sketch_every
        self.hits: dict[str, _Hits] = {}
        self.local: Callable[[str, float], bool] | None = None
        """Whether our own detection agrees about an account (``attach`` sets it)."""
        self._local: dict[str, bool] = {}
        """The local signal's answer at the account's last ``evidence``."""
        self._layout: tuple[tuple[str, int], ...] = ()
        """The engine's signal ids and versions, in the order of its values."""

    def attach(self, engine: Engine, *, ceiling: bool = False) -> None:
        """Plug into ``engine`` beside its other linkers: the evidence goes into its score,
        new matches re-score the account (``Engine.touch``), and, unless the policy's
        ``local_min_score`` is ``None``, the engine's own view of an account can corroborate
        one member's match.

        ``ceiling``: the engine's decisions and verdicts apply ``ceiling`` — an action that
        only an uncorroborated match lifts above ``monitor`` stays at ``monitor`` (rule
        ``intel.ceiling``); an action our own detection reaches without intel is kept."""
        engine.add_linker(self)
        self.on_change = engine.touch
        if self.policy.local_min_score is not None:
            self.local = LocalSignal(engine, self, self.policy.local_min_score)
        if ceiling:
            self._apply_ceiling(engine)

    def _apply_ceiling(self, engine: Engine) -> None:
        """Wrap the engine's ``decide`` and ``verdict`` (every decision goes through them:
        ``observe``, a policy reload, the verdicts at the end) with the ceiling."""
        own = LocalSignal(engine, self, 1.0)
        decide, verdict = engine.decide, engine.verdict

        def capped(st: AccountState, now: float, action: Action) -> tuple[Action, str] | None:
            aid = st.account_id
            if action.rank <= Action.MONITOR.rank or aid not in self.hits:
                return None
            if not self.matched(aid, now) or self.corroborated(aid, now):
                return None
            # what our own detection decides without intel (intel, uncorroborated, names no
            # campaign, so the engine's campaign is another linker's)
            mine, rule = engine.policy.decide(
                own.score(st, now),
                tier=st.tier,
                exchanges=st.exchanges,
                campaign=engine.campaign_of(aid) is not None,
            )
            if mine.rank >= action.rank:
                return None
            return (
                (mine, rule) if mine.rank > Action.MONITOR.rank else (Action.MONITOR, CEILING_RULE)
            )

        def capped_decide(st: AccountState, now: float) -> Decision:
            d = decide(st, now)
            cap = capped(st, now, d.action)
            if cap is None:
                return d
            st.action, st.rule = cap
            return msgspec.structs.replace(d, action=cap[0], rule=cap[1])

        def capped_verdict(st: AccountState, now: float) -> Verdict:
            v = verdict(st, now)
            cap = capped(st, now, v.action)
            if cap is None or v.evidence is None:
                return v
            ev = msgspec.structs.replace(v.evidence, policy=engine.policy.ref(cap[1]))
            return msgspec.structs.replace(v, action=cap[0], evidence=ev)

        engine.decide = capped_decide  # type: ignore[method-assign]
        engine.verdict = capped_verdict  # type: ignore[method-assign]

    def use_index(self, index: IntelIndex) -> None:
        """Match against ``index`` from now on (a rebuilt one: the gateway's feed builds it
        off the event loop). Indicators it lacks (revoked, expired) stop matching; every
        account is looked up again at its next exchange and re-scored."""
        index.generation = max(index.generation, self.index.generation + 1)
        self.index = index
        if self.on_change is not None:
            for aid in self.hits:
                self.on_change(aid)

    def _add(self, h: _Hits, refs: Iterable[IndicatorRef], t: float, aid: str = "") -> None:
        new = False
        for r in refs:
            if r.indicator_id not in h.refs:
                h.refs[r.indicator_id] = r
                h.first = t if not h.first else min(h.first, t)
                new = True
            h.last = max(h.last, t)
        if new and aid and self.on_change is not None:
            self.on_change(aid)

    def observe(self, exchange: Exchange, t: float) -> None:
        aid = exchange.account_id
        h = self.hits.get(aid)
        idx = self.index
        if h is None:
            h = self.hits[aid] = _Hits()
        if h.generation != idx.generation:  # new intel since: look at what we know again
            h.generation = idx.generation
            h.last_ip = h.last_agent = None
            acct = self.accounts.get(aid)
            if acct is not None:
                if acct.payment_fingerprint:
                    self._add(h, idx.match_value("card", acct.payment_fingerprint, t), t, aid)
                if acct.email_domain:
                    self._add(h, idx.match_value("email_domain", acct.email_domain, t), t, aid)
        h.n += 1
        if exchange.ip != h.last_ip:
            h.last_ip = exchange.ip
            self._add(h, idx.match_value("ip", exchange.ip, t), t, aid)
            self._add(h, idx.match_value("net", exchange.ip, t), t, aid)
        ua = exchange.user_agent
        if ua and ua != h.last_agent:
            h.last_agent = ua
            self._add(h, idx.match_value("user_agent", ua, t), t, aid)
        if idx.by_band and (h.n <= self.sketch_first or h.n % self.sketch_every == 0):
            prompt = last_user_text(exchange.request)
            if prompt:
                self._add(h, idx.match_prompt(prompt, t), t, aid)

    def observe_values(
        self, account_id: str, values: Sequence[SignalValue], exchanges: int, now: float
    ) -> None:
        """At a decision point: the behaviour rules the account's signal values (every
        signal's, in the engine's order, as of ``now``) satisfy. A rule matched for the first
        time is a new match (``on_change``, sightings); one no longer satisfied stops counting
        until it is again. Nothing to do without rules."""
        index = self.index
        if not index.rules:
            return
        layout = self._layout
        if len(layout) != len(values):
            layout = self._layout = tuple((v.signal_id, v.version) for v in values)
        self._rules_now(account_id, index.match_rules(layout, values, exchanges, now), now)

    def observe_signals(
        self,
        account_id: str,
        values: Mapping[str, float | None],
        versions: Mapping[str, int],
        exchanges: int,
        t: float,
    ) -> None:
        """Match behaviour rules against an account's signal values (from a verdict)."""
        if not self.index.rules:
            return
        self._rules_now(account_id, self.index.match_signals(values, versions, exchanges, t), t)

    def _rules_now(self, account_id: str, refs: list[IndicatorRef], t: float) -> None:
        """The rules the account satisfies at ``t`` are ``refs``."""
        h = self.hits.get(account_id)
        if h is None:
            if not refs:
                return
            h = self.hits[account_id] = _Hits()
        if not refs:
            if h.rules:
                h.unmet = h.rules
            return
        met = frozenset(r.indicator_id for r in refs)
        h.rules |= met
        h.unmet = h.rules - met
        self._add(h, refs, t, account_id)

    def acted(self, account_id: str, action: Action, t: float) -> None:
        """Nothing to do: intel evidence does not depend on local actions."""

    def campaign_of(self, account_id: str) -> str | None:
        """The STIX id of the shared campaign a *corroborated* match ties the account to.

        Only corroborated intel names a campaign (a policy may act sooner on campaign members);
        one member's word alone never does, one member with our own detection agreeing does.
        """
        h = self.hits.get(account_id)
        if h is None or not h.refs:
            return None
        live = self.matched(account_id, h.last)
        if not self.corroborated(account_id, h.last):
            return None
        votes: dict[str, int] = {}
        for r in live:
            if r.campaign is not None:
                votes[r.campaign] = votes.get(r.campaign, 0) + 1
        return max(sorted(votes), key=lambda c: votes[c]) if votes else None

    def matched(self, account_id: str, now: float) -> list[IndicatorRef]:
        """The account's matched indicators still in the index (not revoked, not replaced
        by an index without them), in their current version, and not expired at ``now``."""
        h = self.hits.get(account_id)
        if h is None:
            return []
        held = self.index.refs
        unmet = h.unmet
        out = []
        for iid in h.refs:
            r = held.get(iid)
            if r is None or (unmet and iid in unmet):
                continue
            if r.valid_until is None or r.valid_until > now:
                out.append(r)
        return out

    def _beliefs(self, refs: list[IndicatorRef]) -> tuple[dict[str, float], dict[str, int]]:
        """Each member's credited belief ``1 − Π(1 − credit)`` and its matched indicators."""
        per_member: dict[str, float] = {}
        count: dict[str, int] = {}
        for r in refs:
            c = self.policy.credit(r.kind, r.confidence)
            per_member[r.member] = 1.0 - (1.0 - per_member.get(r.member, 0.0)) * (1.0 - c)
            count[r.member] = count.get(r.member, 0) + 1
        return per_member, count

    def corroborated(self, account_id: str, now: float) -> bool:
        """Whether enough members, each confident enough, agree on the account — or one does
        and the local signal agreed at the account's last ``evidence``."""
        refs = self.matched(account_id, now)
        local = self._local.get(account_id, False)
        return bool(refs) and self.policy.combine(self._beliefs(refs)[0], local=local)[1]

    def _combine(
        self, account_id: str, per_member: Mapping[str, float], now: float
    ) -> tuple[float, bool, bool]:
        """Evidence, whether corroborated, and whether only thanks to the local signal.

        The local signal (it evaluates every signal) is asked only when it can matter: the
        members alone do not corroborate and one of them supports the match by itself.
        """
        ev, ok = self.policy.combine(per_member)
        local = False
        if not ok and self.local is not None:
            p = self.policy
            if any(p.weights.get(m, 0.0) * c >= p.min_support for m, c in per_member.items()):
                local = self.local(account_id, now)
        self._local[account_id] = local
        if local:
            ev, ok = self.policy.combine(per_member, local=True)
        return ev, ok, local and ok

    def evidence(self, account_id: str, now: float) -> SignalValue | None:
        refs = self.matched(account_id, now)
        if not refs:
            return None
        per_member, count = self._beliefs(refs)
        ev, corroborated, by_local = self._combine(account_id, per_member, now)
        rules: dict[str, int] = {}
        for r in refs:
            if r.kind == "rule":
                rules[r.member] = rules.get(r.member, 0) + 1
        parts = [
            f"{_matches(count[m] - rules.get(m, 0), rules.get(m, 0))} from {m} "
            f"(confidence {round(100 * per_member[m])})"
            for m in sorted(count, key=lambda m: -per_member[m])
        ]
        if by_local:
            note = "; corroborated by our own detection"
        else:
            note = "" if corroborated else "; uncorroborated: monitor only"
        return SignalValue(
            signal_id=SIGNAL_ID,
            version=SIGNAL_VERSION,
            value=float(len(refs)),
            evidence=round(ev, 3),
            explanation=f"matches {', '.join(parts)}{note}",
        )

    def ceiling(self, account_id: str, now: float) -> Action:
        """The strongest action intel alone may justify: ``monitor`` unless corroborated."""
        if not self.matched(account_id, now):
            return Action.ALLOW
        return Action.BLOCK if self.corroborated(account_id, now) else Action.MONITOR

    def sightings(self, member: str, now: datetime) -> list[stix2.v21.Sighting]:
        """One STIX sighting per matched indicator: how many local accounts matched it."""
        me = identity_id(member)
        per: dict[str, tuple[int, float, float]] = {}
        for h in self.hits.values():
            for iid in h.refs:
                n, f, last = per.get(iid, (0, h.first, h.last))
                per[iid] = (n + 1, min(f, h.first), max(last, h.last))
        out = []
        for iid in sorted(per):
            n, f, last = per[iid]
            out.append(
                stix2.v21.Sighting(
                    created=now,
                    modified=now,
                    created_by_ref=me,
                    sighting_of_ref=iid,
                    where_sighted_refs=[me],
                    count=n,
                    first_seen=datetime.fromtimestamp(f, now.tzinfo),
                    last_seen=datetime.fromtimestamp(max(f, last), now.tzinfo),
                    description=f"{n} local account(s) matched",
                )
            )
        return out


def _matches(indicators: int, rules: int) -> str:
    """``2 indicators``, ``1 behaviour rule``, ``1 indicator and 1 behaviour rule``."""
    out = []
    if indicators:
        out.append(f"{indicators} indicator{'s' if indicators != 1 else ''}")
    if rules:
        out.append(f"{rules} behaviour rule{'s' if rules != 1 else ''}")
    return " and ".join(out)
