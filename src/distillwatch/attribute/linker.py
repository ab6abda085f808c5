"""The online linker: accounts attach to campaigns during the replay, causally.

Every exchange adds its keys to the bounded account–key graph (``graph``): O(1) amortised.
Two paths turn the graph into campaigns, both using only what was seen so far:

* **Refresh** (``cluster.find_blocks``): the dense blocks of the whole graph, recomputed
  when the graph has grown by ``refresh_growth`` of its edges since the last refresh (and
  at most once per ``min_refresh_s`` of log time), so the total refresh work stays
  proportional to the log. A block that overlaps a known campaign keeps its id; a new one
  gets ``campaigns.campaign_id`` of its earliest account and heaviest key, so the same log
  gives the same ids.
* **Attach** (between refreshes): when an account outside every campaign gains a key that
  members of a campaign hold, its link to that campaign grows by the key's weight times the
  share of the key's recent holders that are members; past ``min_link`` over
  ``min_families`` families it joins at once — a new account of a known campaign is
  attached from its first requests, not at the next refresh.

Evidence (``evidence``) flows only from a *detected* campaign — one whose members acted on
count for at least ``min_acted`` — and is ``max_evidence`` × how strongly the account is
linked (0.2 at ``min_link``, rising to 1 at 1.4 × ``min_link``) × how confirmed it is:
``(1 − 2^−(k−1)) · min(1, 4 · k / m)`` for ``k`` of its ``m`` other members acted on (each
acted member makes a chance grouping of legitimate accounts less likely; a big cluster with
few of its members acted on says less). A member only *monitored* (suspicious, not yet
acted on) counts ``suspect_weight`` of one acted on: a camouflaged campaign none of whose
accounts is suspicious enough alone is still detected when enough of them are suspicious
together — the campaign, not the account, is the unit. A dense legitimate group (a team
without an ``org_id``) gives its members nothing unless several of them are suspicious on
their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from distillwatch.attribute.baseline import SignupBaseline
from distillwatch.attribute.campaigns import Campaign, campaign_id
from distillwatch.attribute.cluster import LinkRule, attach_link, find_blocks
from distillwatch.attribute.graph import LinkGraph
from distillwatch.attribute.keys import (
    account_keys,
    exchange_keys,
    family,
    switch_keys,
    sync_key,
)
from distillwatch.clock import to_datetime
from distillwatch.records import Account, Action, Exchange, SignalValue
from distillwatch.signals.lockstep import Bursts

SIGNAL_ID = "campaign.link"
SIGNAL_VERSION = 1


@dataclass(frozen=True)
class LinkerConfig:
    """The linker's knobs (defaults are the shipped behaviour)."""

    per_account: int = 32
    per_key: int = 65_536
    min_link: float = 0.7
    min_families: int = 2
    min_strong: float = 0.35
    bridge: float = 0.16
    min_accounts: int = 3
    min_acted: int = 2
    suspect_weight: float = 0.25
    """What a monitored (not acted-on) member counts for toward ``min_acted`` and evidence."""
    max_evidence: float = 8.0
    refresh_growth: float = 0.5
    refresh_min_edges: int = 256
    min_refresh_s: float = 1_800.0
    attach_scan: int = 32
    scaffold_dense: int = 8
    """Every exchange's prompt scaffold is keyed for an account's first this-many exchanges…"""
    scaffold_every: int = 8
    """…then every this-many-th (a sample: the account's key budget is bounded anyway)."""
    refresh_every: int = 8
    """An unchanged address or client is re-used in the account's key budget every this many
    exchanges (in between it is skipped: most requests come from where the last one did)."""
    switch_after: int = 3
    """A model first used after this many exchanges is a switch (not the account's start)."""
    max_models: int = 16
    sync_share: float = 0.5
    """An account is in lockstep once at least this share of its settled requests were in
    bursts (``signals.lockstep.Bursts``)…"""
    sync_min: int = 6
    """…over at least this many of them. Two accounts in lockstep that meet in bursts
    ``sync_meetings`` times (while each stays among the other's last ``sync_partners``
    burst partners) share a ``sync`` key: one scheduler's workers meet again and again,
    two operators' batches only when they happen to leave in the same second."""
    sync_meetings: int = 3
    sync_partners: int = 128


class _Acct:
    __slots__ = (
        "attach",
        "campaign",
        "first_t",
        "last_agent",
        "last_ip",
        "last_t",
        "link",
        "models",
        "n",
        "org",
        "partners",
        "sync_hits",
        "sync_n",
    )

    def __init__(self, org: str | None, t: float) -> None:
        self.org = org
        self.last_ip: str | None = None
        self.last_agent: str | None = None
        self.n = 0
        self.first_t = t
        self.last_t = t
        self.models: set[str] = set()
        self.campaign: str | None = None
        self.sync_n = 0
        """Settled requests (``Bursts``), and of them those in bursts."""
        self.sync_hits = 0
        self.partners: dict[str, int] | None = None
        """Accounts met in its recent bursts and how often, least recent first."""
        self.link = 0.0
        self.attach: dict[str, dict[str, float]] = {}
        """Campaign → family → weight gained since the last refresh (outside every campaign,
        or joined online: then only its own campaign's)."""


class _Campaign:
    __slots__ = ("acted", "by_family", "cid", "keys", "members", "suspected")

    def __init__(
        self, cid: str, members: set[str], by_family: dict[str, float], keys: tuple[str, ...]
    ) -> None:
        self.cid = cid
        self.members = members
        self.acted = 0  # members acted on
        self.suspected = 0  # members monitored and not (yet) acted on
        self.by_family = by_family
        self.keys = keys


class CampaignLinker:
    """Campaign attribution behind the engine's ``Linker`` protocol.

    Give the engine's ``touch`` to ``on_change`` (or set it after building the engine) so
    accounts whose campaign evidence changes are re-scored at their next exchange.
    """

    def __init__(
        self,
        accounts: Mapping[str, Account] | None = None,
        config: LinkerConfig | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.accounts = accounts or {}
        self.config = config or LinkerConfig()
        cfg = self.config
        self.rule = LinkRule(cfg.min_link, cfg.min_families, cfg.min_strong, cfg.bridge)
        self.on_change = on_change
        self.graph = LinkGraph(
            self.config.per_account, self.config.per_key, SignupBaseline(self.accounts).bar
        )
        self.bursts: Bursts[str] = Bursts(unit=self._unit)
        self.states: dict[str, _Acct] = {}
        self.campaigns: dict[str, _Campaign] = {}
        self.acted_accounts: set[str] = set()
        self.suspected_accounts: set[str] = set()
        self.refreshes = 0
        self._added_at_refresh = 0
        self._refreshed_t: float | None = None
        self._memo: dict[tuple[str, float], SignalValue] = {}

    # -- the Linker protocol -------------------------------------------------------------

    def observe(self, exchange: Exchange, t: float) -> None:
        cfg = self.config
        aid = exchange.account_id
        st = self.states.get(aid)
        if st is None:
            account = self.accounts.get(aid)
            st = self.states[aid] = _Acct(account.org_id if account else None, t)
            for key in account_keys(account):
                self._hold(aid, st, key)
        st.n += 1
        st.last_t = t
        n = st.n
        text = n <= cfg.scaffold_dense or n % cfg.scaffold_every == 0
        if n % cfg.refresh_every:  # unchanged address and client: held already
            keys = exchange_keys(exchange, text=text, last_ip=st.last_ip, last_agent=st.last_agent)
        else:  # now and then, so they stay among the account's recently used keys
            keys = exchange_keys(exchange, text=text)
        st.last_ip, st.last_agent = exchange.ip, exchange.user_agent
        for key in keys:
            self._hold(aid, st, key)
        if text and len(keys) >= 2 and keys[-1].startswith("scaffold:t"):
            self.graph.seen_together(keys[-2], keys[-1])
        model = exchange.model
        if model not in st.models and len(st.models) < cfg.max_models:
            st.models.add(model)
            if n > cfg.switch_after:
                for key in switch_keys(model, t):
                    self._hold(aid, st, key)
        for b, _, hit, around in self.bursts.add(aid, t):
            self._synced(b, hit, around)
        self._maybe_refresh(t)

    def _unit(self, aid: str) -> str:
        org = self.states[aid].org
        return aid if org is None else f"org:{org}"

    def _in_lockstep(self, st: _Acct) -> bool:
        cfg = self.config
        return st.sync_n >= cfg.sync_min and st.sync_hits >= cfg.sync_share * st.sync_n

    def _synced(self, aid: str, hit: bool, around: tuple[str, ...]) -> None:
        """A settled request. In a burst, an account in lockstep counts a meeting with each
        other account in lockstep around it; at ``sync_meetings`` the two share a key."""
        st = self.states[aid]
        st.sync_n += 1
        if not hit:
            return
        st.sync_hits += 1
        if not self._in_lockstep(st):
            return
        recent = st.partners if st.partners is not None else {}
        cap, enough = self.config.sync_partners, self.config.sync_meetings
        for b in around:
            if b == aid:
                continue
            sb = self.states[b]
            if not self._in_lockstep(sb):
                continue
            met = recent.pop(b, 0) + 1
            if met >= enough:  # (each side counts; the first to get there keys both)
                key = sync_key(aid, b)
                self._hold(aid, st, key)
                self._hold(b, sb, key)
            elif met == 1 and len(recent) >= cap:
                del recent[next(iter(recent))]
            recent[b] = met
        st.partners = recent

    def acted(self, account_id: str, action: Action, t: float) -> None:
        st = self.states.get(account_id)
        camp = self.campaigns.get(st.campaign) if st and st.campaign else None
        before = self._weight(camp) if camp is not None else 0.0
        if action.enforces:
            if account_id in self.acted_accounts:
                return
            self.acted_accounts.add(account_id)
            if camp is not None:
                camp.acted += 1
                if account_id in self.suspected_accounts:
                    camp.suspected -= 1
        elif action is Action.MONITOR:
            if account_id in self.suspected_accounts or account_id in self.acted_accounts:
                return
            self.suspected_accounts.add(account_id)
            if camp is not None:
                camp.suspected += 1
        else:
            return
        if camp is not None:
            after = self._weight(camp)
            k = self.config.min_acted
            # detected now, or its evidence doubled: re-score the members (O(m log m) in all)
            if before < k <= after or (
                after >= k and int(after).bit_length() > int(before).bit_length()
            ):
                self._touch(camp.members)

    def _weight(self, camp: _Campaign) -> float:
        """How many members acted on the campaign counts for (monitored ones partly)."""
        return camp.acted + self.config.suspect_weight * camp.suspected

    def _count(self, camp: _Campaign) -> None:
        camp.acted = sum(a in self.acted_accounts for a in camp.members)
        camp.suspected = sum(
            a in self.suspected_accounts and a not in self.acted_accounts for a in camp.members
        )

    def evidence(self, account_id: str, now: float) -> SignalValue | None:
        st = self.states.get(account_id)
        if st is None or st.campaign is None:
            return None
        camp = self.campaigns[st.campaign]
        others = len(camp.members) - 1
        own = 1.0 if account_id in self.acted_accounts else 0.0
        if not own and account_id in self.suspected_accounts:
            own = self.config.suspect_weight
        acted = self._weight(camp) - own
        if others <= 0 or acted < self.config.min_acted:
            return None
        # a link just over the bar says little; 40 % over it is a full link
        strength = min(1.0, max(0.0, 0.2 + 2.0 * (st.link / self.config.min_link - 1.0)))
        share = acted / others
        # each acted member makes a chance grouping of legitimate accounts less likely; a
        # big cluster with few of its members acted on says less
        confirmed = (1.0 - 0.5 ** (acted - 1)) * min(1.0, 4.0 * share)
        ev = round(self.config.max_evidence * strength * confirmed, 2)
        key = (camp.cid, ev)
        value = self._memo.get(key)
        if value is None:
            if len(self._memo) > 65_536:
                self._memo.clear()
            top = sorted(camp.by_family, key=lambda f: -camp.by_family[f])[:3]
            value = self._memo[key] = SignalValue(
                signal_id=SIGNAL_ID,
                version=SIGNAL_VERSION,
                value=round(strength * confirmed, 3),
                evidence=ev,
                explanation=(
                    f"linked to campaign {camp.cid} ({others + 1} accounts: {camp.acted} acted "
                    f"on, {camp.suspected} more suspected) by shared {', '.join(top) or 'keys'}"
                ),
            )
        return value

    def campaign_of(self, account_id: str) -> str | None:
        st = self.states.get(account_id)
        if st is None or st.campaign is None:
            return None
        camp = self.campaigns[st.campaign]
        return camp.cid if self._weight(camp) >= self.config.min_acted else None

    # -- reporting -----------------------------------------------------------------------

    def detected(self) -> Iterator[Campaign]:
        """Campaign records of every detected campaign (see ``campaign_of``)."""
        for camp in self.campaigns.values():
            if self._weight(camp) < self.config.min_acted:
                continue
            members = sorted(camp.members)
            states = [self.states[a] for a in members]
            shared: dict[str, int] = {}
            for k in camp.keys:
                f = family(k)
                shared[f] = shared.get(f, 0) + 1
            yield Campaign(
                campaign_id=camp.cid,
                accounts=members,
                size=len(members),
                acted=camp.acted,
                evidence=dict(camp.by_family),
                shared_keys=shared,
                first_seen=to_datetime(min(s.first_t for s in states)),
                last_seen=to_datetime(max(s.last_t for s in states)),
                exchanges=sum(s.n for s in states),
                scaffolds=[k for k in camp.keys if k.startswith("scaffold:")][:5],
            )

    # -- internals -----------------------------------------------------------------------

    def _touch(self, accounts: set[str] | list[str]) -> None:
        if self.on_change is not None:
            for a in sorted(accounts):
                self.on_change(a)

    def _hold(self, aid: str, st: _Acct, key: str) -> None:
        # outside every campaign, or joined one since the last refresh: the link grows
        if (
            self.graph.hold(aid, st.org, key)
            and self.campaigns
            and (st.campaign is None or st.attach)
        ):
            self._attach(aid, st, key)

    def _attach(self, aid: str, st: _Acct, key: str) -> None:
        """Grow the account's link to campaigns whose members hold ``key``; join past the bar."""
        node = self.graph.nodes.get(key)
        if node is None or len(node.members) < 2:
            return
        weight = node.weight
        if weight <= 0.0:
            return
        counts: dict[str, int] = {}
        scanned = 0
        for b in itertools.islice(reversed(node.members), self.config.attach_scan + 1):
            if b == aid:
                continue
            scanned += 1
            if st.org is not None and node.members[b] == st.org:
                continue
            other = self.states.get(b)
            if other is not None and other.campaign is not None:
                counts[other.campaign] = counts.get(other.campaign, 0) + 1
        if not counts:
            return
        f = family(key)
        joined = st.campaign
        for cid in sorted(counts):
            if joined is not None and cid != joined:
                continue  # joined online: its link to its campaign keeps growing until refresh
            fam = st.attach.setdefault(cid, {})
            fam[f] = fam.get(f, 0.0) + weight * counts[cid] / scanned
            link = self.rule.value(fam)
            if link is None:
                continue
            if joined is not None:
                st.link = link
            else:
                self._join(aid, st, cid, link)
            return

    def _join(self, aid: str, st: _Acct, cid: str, link: float) -> None:
        camp = self.campaigns[cid]
        st.campaign, st.link, st.attach = cid, link, {cid: st.attach[cid]}
        camp.members.add(aid)
        if aid in self.acted_accounts:
            camp.acted += 1
        elif aid in self.suspected_accounts:
            camp.suspected += 1
        self._touch([aid])

    def _maybe_refresh(self, t: float) -> None:
        cfg = self.config
        g = self.graph
        new = g.added - self._added_at_refresh
        if new < max(cfg.refresh_min_edges, cfg.refresh_growth * g.edges):
            return
        if self._refreshed_t is not None and t - self._refreshed_t < cfg.min_refresh_s:
            return
        self.refresh(t)

    def refresh(self, t: float) -> None:
        """Recompute the campaigns from the graph as it is now (only the past is in it)."""
        cfg = self.config
        g = self.graph
        self._refreshed_t = t
        self._added_at_refresh = g.added
        self.refreshes += 1
        weights: dict[str, float] = {}
        adj: dict[str, list[str]] = {}
        orgs: dict[str, str | None] = {}
        for aid, h in g.holders.items():
            keys = []
            for k in h.all_keys():
                w = weights.get(k)
                if w is None:
                    node = g.nodes[k]
                    w = weights[k] = node.weight if len(node.members) >= 2 else 0.0
                if w > 0.0:
                    keys.append(k)
            if len(keys) >= cfg.min_families:
                adj[aid] = keys
                orgs[aid] = h.org
        blocks = find_blocks(
            adj,
            weights,
            orgs,
            rule=self.rule,
            min_accounts=cfg.min_accounts,
        )
        old = self.campaigns
        was: dict[str, str | None] = {a: s.campaign for a, s in self.states.items() if s.campaign}
        detected_before = {c.cid for c in old.values() if self._weight(c) >= cfg.min_acted}
        fresh: dict[str, _Campaign] = {}
        for block in sorted(blocks, key=lambda b: (-len(b.accounts), b.accounts[0])):
            votes: dict[str, int] = {}
            for a in block.accounts:
                c = was.get(a)
                if c is not None and c not in fresh:
                    votes[c] = votes.get(c, 0) + 1
            cid = None
            if votes:
                best = max(sorted(votes), key=lambda c: votes[c])
                if votes[best] * 2 >= min(len(old[best].members), len(block.accounts)):
                    cid = best
            if cid is None:
                earliest = min(block.accounts, key=lambda a: (self.states[a].first_t, a))
                cid = campaign_id(earliest, block.keys[0] if block.keys else "")
                while cid in fresh:  # a hash collision between two blocks: keep both
                    cid = campaign_id(cid, "")
            fresh[cid] = _Campaign(cid, set(block.accounts), block.by_family, block.keys)
        for st in self.states.values():
            st.campaign, st.link, st.attach = None, 0.0, {}
        for cid, camp in fresh.items():
            for a in camp.members:
                self.states[a].campaign = cid
            self._count(camp)
        for block in blocks:
            for a, v in block.link.items():
                self.states[a].link = v
        self.campaigns = fresh
        detected_now = {cid for cid, c in fresh.items() if self._weight(c) >= cfg.min_acted}
        changed = [
            a
            for a, s in self.states.items()
            if s.campaign != was.get(a)
            and (s.campaign in detected_now or was.get(a) in detected_before)
        ]
        for cid, camp in fresh.items():
            if self._weight(camp) >= cfg.min_acted and cid not in detected_before:
                changed.extend(camp.members)
        self._touch(sorted(set(changed)))

    def link_into(self, account_id: str) -> dict[str, float]:
        """The account's link into each current campaign (diagnostics and tests)."""
        holders: dict[str, dict[int, set[str]]] = {}
        ids = sorted(self.campaigns)
        for i, cid in enumerate(ids):
            for a in self.campaigns[cid].members:
                h = self.graph.holders.get(a)
                if h is None:
                    continue
                unit = h.org or f"acct:{a}"
                for k in h.all_keys():
                    holders.setdefault(k, {}).setdefault(i, set()).add(unit)
        h = self.graph.holders.get(account_id)
        if h is None:
            return {}
        weights = {k: self.graph.weight(k) for k in h.all_keys()}
        links = attach_link(list(h.all_keys()), h.org, holders, weights, self.rule)
        return {ids[i]: v for i, v in links.items()}
