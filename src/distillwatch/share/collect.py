"""What a member may share about its detected campaigns, gathered from its own log.

For every campaign (from ``campaigns.jsonl``) this collects the attributes its accounts used —
addresses, /24 and /48 networks, user agents (exchanges), payment fingerprints and e-mail
domains (accounts file) — and its prompt-scaffold edges. Only what is *specific to attackers*
is kept, which is both the privacy rule and the false-positive rule:

* an attribute must be held by at least ``min_accounts`` accounts of the campaign, and by
  **no** account outside every campaign (``max_outside``, default 0): an address, domain or
  client that any local customer not in a campaign also used is never published, so a shared
  NAT, ``gmail.com`` or a popular SDK never becomes an indicator;
* a prompt scaffold — a cut of a prompt's folded head or tail at a word boundary, at least
  ``MIN_SCAFFOLD`` characters — must be sent by at least ``scaffold_k`` accounts of the
  campaign and be followed by at least ``MIN_BRANCHES`` different words. Of nested cuts only
  the one followed by the most different words is a scaffold (where the template ends and
  the payload begins; ties: the shorter, the more cautious); *then* it must never have been
  sent by an account outside every campaign (a second pass over the log checks). At most
  ``MAX_SCAFFOLDS`` per campaign; prompts are sampled per account (its first
  ``SAMPLE_FIRST``, then every ``SAMPLE_EVERY``-th).

Accounts the member *acted on* (throttle or stronger; ``acted_accounts`` reads them from
verdicts), in a campaign or not, are shared one by one too (``individual``), with only the
attributes that are costly to rotate and name no one else: the account's payment fingerprint,
its e-mail domain, and the addresses that carried at least ``account_min_uses`` of its
exchanges (a rotating proxy's one-off exit is some household's address next hour). Never its
network, client or scaffolds: a /24 or an SDK's user agent is shared by many customers, and a
scaffold needs ``scaffold_k`` accounts. The same veto applies: anything an account outside
every campaign and not acted on also holds is never shared.

Raw values stay inside this module's result; ``export`` turns them into keyed forms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from distillwatch.records import Account, Exchange, Verdict
from distillwatch.share.keys import cut, edge_text, normalise, scaffold_cuts
from distillwatch.signals.text import last_user_text

MIN_BRANCHES: Final = 3
BRANCH_CAP: Final = 32
"""Distinct following words counted per scaffold (enough to rank nested cuts)."""
MAX_SCAFFOLDS: Final = 5
SAMPLE_FIRST: Final = 8
SAMPLE_EVERY: Final = 8
EDGES: Final = ("head", "tail")


def _next_word(text: str, edge: str, length: int) -> str:
    """The word after a head cut (before a tail cut): what the template wraps."""
    if edge == "head":
        return text[length + 1 :].split(" ", 1)[0]
    return text[: len(text) - length - 1].rsplit(" ", 1)[-1]


def _cuts(prompt: str) -> Iterator[tuple[str, str, int, str]]:
    """(edge, folded edge text, cut length, scaffold) of every candidate cut of a prompt."""
    for edge in EDGES:
        text = edge_text(prompt, edge)
        for n in scaffold_cuts(text, edge):
            yield edge, text, n, cut(text, edge, n)


@dataclass
class CampaignIntel:
    """Attacker-specific attributes of one campaign (raw: never exported as they are)."""

    campaign_id: str
    accounts: frozenset[str]
    attributes: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(kind, normalised value) → campaign accounts that used it."""
    scaffolds: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(head|tail, scaffold) → campaign accounts that sent it."""
    branches: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(head|tail, scaffold) → words that followed (preceded) it (capped)."""


@dataclass(frozen=True)
class CollectRules:
    min_accounts: int = 2
    max_outside: int = 0
    scaffold_k: int = 3
    account_kinds: frozenset[str] = frozenset({"card", "email_domain", "ip"})
    """What is shared about one acted-on account (see the module docstring)."""
    account_min_uses: int = 3
    """An address is one account's only if it carried this many of its exchanges."""


def acted_accounts(verdicts: Iterable[Verdict]) -> set[str]:
    """Accounts a verdict says were acted on (throttle or stronger) at some point."""
    return {v.account_id for v in verdicts if v.first_action_ts is not None}


class Collector:
    """Fold a log in (any order) and report each campaign's shareable attributes."""

    def __init__(
        self,
        campaigns: Mapping[str, Iterable[str]],
        accounts: Mapping[str, Account],
        rules: CollectRules | None = None,
        acted: Iterable[str] = (),
    ) -> None:
        self.rules = rules or CollectRules()
        self.intel = {cid: CampaignIntel(cid, frozenset(a)) for cid, a in campaigns.items()}
        self.member_of: dict[str, str] = {}
        for cid, ci in self.intel.items():
            for a in ci.accounts:
                self.member_of.setdefault(a, cid)
        self.acted = frozenset(acted)
        """Accounts acted on, shared one by one (``individual``)."""
        self.uses: dict[str, dict[tuple[str, str], int]] = {a: {} for a in sorted(self.acted)}
        """Acted-on account → (kind, normalised value) → exchanges (1 for sign-up data)."""
        self.outside: dict[tuple[str, str], set[str]] = {}
        """Attribute → outside accounts holding it (capped at ``max_outside`` + 1)."""
        self.outside_scaffolds: set[tuple[str, str]] = set()
        self._sampled: dict[str, int] = {}
        self._last: dict[str, tuple[str, str | None]] = {}
        for acct in accounts.values():
            self._account(acct)

    def _hold(self, account_id: str, kind: str, value: str | None) -> None:
        norm = normalise(kind, value) if value else None
        if norm is None:
            return
        key = (kind, norm)
        own = self.uses.get(account_id)
        if own is not None and kind in self.rules.account_kinds and kind != "ip":
            own[key] = 1  # sign-up data (addresses are counted per exchange in ``observe``)
        cid = self.member_of.get(account_id)
        if cid is not None:
            self.intel[cid].attributes.setdefault(key, set()).add(account_id)
            return
        if own is not None:
            return  # an acted-on account never vetoes what attackers share
        holders = self.outside.setdefault(key, set())
        if len(holders) <= self.rules.max_outside:
            holders.add(account_id)

    def _account(self, acct: Account) -> None:
        self._hold(acct.account_id, "card", acct.payment_fingerprint)
        self._hold(acct.account_id, "email_domain", acct.email_domain)

    def observe(self, exchange: Exchange) -> None:
        """First pass: attributes of everybody, scaffold candidates of campaign accounts."""
        aid = exchange.account_id
        own = self.uses.get(aid)
        if own is not None and "ip" in self.rules.account_kinds:
            ip = normalise("ip", exchange.ip)
            if ip is not None:
                own[("ip", ip)] = own.get(("ip", ip), 0) + 1
        last = self._last.get(aid)
        now = (exchange.ip, exchange.user_agent)
        if last != now:  # most requests come from where the last one did
            self._last[aid] = now
            if last is None or last[0] != now[0]:
                self._hold(aid, "ip", exchange.ip)
                self._hold(aid, "net", exchange.ip)
            if last is None or last[1] != now[1]:
                self._hold(aid, "user_agent", exchange.user_agent)
        cid = self.member_of.get(aid)
        if cid is None:
            return
        n = self._sampled[aid] = self._sampled.get(aid, 0) + 1
        if n > SAMPLE_FIRST and n % SAMPLE_EVERY:
            return
        prompt = last_user_text(exchange.request)
        if not prompt:
            return
        ci = self.intel[cid]
        for edge, text, length, sc in _cuts(prompt):
            key = (edge, sc)
            ci.scaffolds.setdefault(key, set()).add(aid)
            seen = ci.branches.setdefault(key, set())
            if len(seen) < BRANCH_CAP:
                seen.add(_next_word(text, edge, length))

    def candidates(self) -> set[tuple[str, str]]:
        """Scaffolds that pass the campaign-side rules (before the outside check)."""
        k = self.rules.scaffold_k
        return {
            key
            for ci in self.intel.values()
            for key, holders in ci.scaffolds.items()
            if len(holders) >= k and len(ci.branches.get(key, ())) >= MIN_BRANCHES
        }

    def observe_outside(self, exchange: Exchange, wanted: set[tuple[str, str]]) -> None:
        """Second pass: mark candidate scaffolds that an account outside every campaign sent."""
        if exchange.account_id in self.member_of or exchange.account_id in self.acted:
            return
        prompt = last_user_text(exchange.request)
        if not prompt:
            return
        for edge, _, _, sc in _cuts(prompt):
            if (edge, sc) in wanted:
                self.outside_scaffolds.add((edge, sc))

    def run(self, read: Callable[[], Iterable[Iterable[Exchange]]]) -> None:
        """Both passes over a log (``read`` opens it afresh); the second only when needed."""
        for batch in read():
            for e in batch:
                self.observe(e)
        wanted = self.candidates()
        if wanted:
            for batch in read():
                for e in batch:
                    self.observe_outside(e, wanted)

    def individual(self, account_id: str) -> dict[str, set[str]]:
        """An acted-on account's own shareable attributes by kind (see the module docstring)."""
        r = self.rules
        out: dict[str, set[str]] = {}
        for (kind, value), n in self.uses.get(account_id, {}).items():
            if kind == "ip" and n < r.account_min_uses:
                continue
            if len(self.outside.get((kind, value), ())) <= r.max_outside:
                out.setdefault(kind, set()).add(value)
        return out

    def shareable(self, campaign_id: str) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
        """The campaign's attacker-specific attributes by kind, and its scaffold edges."""
        r = self.rules
        ci = self.intel[campaign_id]
        attrs: dict[str, set[str]] = {}
        for (kind, value), holders in ci.attributes.items():
            outside = len(self.outside.get((kind, value), ()))
            if len(holders) >= r.min_accounts and outside <= r.max_outside:
                attrs.setdefault(kind, set()).add(value)
        kept = [
            key
            for key, holders in ci.scaffolds.items()
            if len(holders) >= r.scaffold_k and len(ci.branches.get(key, ())) >= MIN_BRANCHES
        ]
        branches = {key: len(ci.branches[key]) for key in kept}

        def nested(a: tuple[str, str], b: tuple[str, str]) -> bool:
            if a[0] != b[0] or a == b:
                return False
            short, long = sorted((a[1], b[1]), key=len)
            return long.startswith(short) if a[0] == "head" else long.endswith(short)

        # of nested cuts, the one most words follow is where the payload starts (ties: shorter)
        best = [
            key
            for key in kept
            if not any(
                nested(key, other)
                and (branches[other], -len(other[1])) > (branches[key], -len(key[1]))
                for other in kept
            )
        ]
        # the template is found first, then checked: a customer of ours sending it vetoes it
        # (a longer cut that only adds a payload word would slip past that check)
        best = [key for key in best if key not in self.outside_scaffolds]
        best.sort(key=lambda k: (-len(ci.scaffolds[k]), -len(k[1]), k))
        return attrs, sorted(best[:MAX_SCAFFOLDS])
