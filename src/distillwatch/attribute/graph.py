"""The account–key graph: a bounded inverted index with popularity- and org-aware weights.

Accounts and keys form a bipartite graph (an account holds a key when it sent or signed up
with it). Both sides are bounded: an account keeps its ``per_account`` most recently used
request keys (sign-up keys for good), a key its ``per_key`` most recent holders; whatever
falls out of one side is removed from the other, so memory is O(accounts · per_account).

When an account's budget is full, a key only it holds goes first (the oldest of the
``SPARE`` least recently used), so chance-unique keys — a fresh proxy exit, a question's own
wording — do not push out the keys it shares.

A key's weight is its family's base weight divided by ``ln(5 + min(units, 64))`` (FRAUDAR's
column weighting, Hooi et al. KDD 2016, saturated so that a 20,000-account campaign's shared
keys still count), where *units* counts the key's holders with all accounts of one
organisation (``org_id``) as one: a key shared by many unrelated accounts (a popular
prompt, a big NAT) says little, and a key shared only inside one organisation (an office
behind its NAT, a class on its shared card) says nothing — accounts of one legitimate
organisation are expected to share everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from distillwatch.attribute.keys import FAMILIES, LIFETIME_FAMILIES, MIN_UNITS, MIN_VARIETY

SMOOTHING = 5.0
SATURATION = 64
"""Past this many units popularity discounts a key no further: a sign-up burst of 20,000
accounts is no weaker evidence among accounts that share everything else than one of 64."""
SPARE = 8


class KeyNode:
    """One key: its family, its most recent holders, and how many units ever held it."""

    __slots__ = (
        "base",
        "evicted",
        "family",
        "loose",
        "members",
        "min_units",
        "orgs",
        "partner",
        "variety",
    )

    def __init__(self, fam: str) -> None:
        self.family = fam
        self.base = FAMILIES[fam]
        self.min_units = MIN_UNITS.get(fam, 2)
        self.partner = ""
        self.variety = MIN_VARIETY if fam != "scaffold" else 0
        """How often the scaffold edge came with a different other edge (capped)."""
        self.members: dict[str, str | None] = {}
        """Holder → its organisation, oldest first."""
        self.orgs: dict[str, int] = {}
        self.loose = 0
        """Holders without an organisation."""
        self.evicted = 0
        """Holders that fell out of ``members`` (counted as units of their own)."""

    @property
    def units(self) -> int:
        """Distinct holders, an organisation counting once (evicted ones included)."""
        return self.loose + len(self.orgs) + self.evicted

    @property
    def weight(self) -> float:
        """Evidence of one shared key: 0 unless enough units hold it (``MIN_UNITS``).

        >>> n = KeyNode("card"); n.add("a", None); n.weight
        0.0
        >>> n.add("b", None); round(n.weight, 3)
        0.514
        >>> m = KeyNode("card"); m.add("a", "org1"); m.add("b", "org1"); m.weight
        0.0
        >>> s = KeyNode("scaffold"); s.add("a", None); s.add("b", None); s.weight
        0.0
        >>> for p in ("x", "y", "z"): s.seen_with(p)
        >>> round(s.weight, 3)
        0.154
        >>> big = KeyNode("signup"); big.loose = 20_000; round(big.weight, 3)  # saturated
        0.165
        """
        units = self.units
        if units < self.min_units or self.variety < MIN_VARIETY:
            return 0.0
        return self.base / math.log(SMOOTHING + min(units, SATURATION))

    def seen_with(self, partner: str) -> None:
        """The scaffold edge was seen with ``partner`` (the prompt's other edge)."""
        if partner != self.partner:
            self.partner = partner
            if self.variety < MIN_VARIETY:
                self.variety += 1

    def add(self, account: str, org: str | None) -> None:
        self.members[account] = org
        if org is None:
            self.loose += 1
        else:
            self.orgs[org] = self.orgs.get(org, 0) + 1

    def remove(self, account: str, *, evicted: bool = False) -> None:
        org = self.members.pop(account, "")
        if org == "":
            return
        if org is None:
            self.loose -= 1
        else:
            left = self.orgs[org] - 1
            if left:
                self.orgs[org] = left
            else:
                del self.orgs[org]
        if evicted:
            self.evicted += 1


class Holder:
    """One account's side of the graph."""

    __slots__ = ("fixed", "keys", "org")

    def __init__(self, org: str | None) -> None:
        self.org = org
        self.fixed: list[str] = []
        """Lifetime keys (``LIFETIME_FAMILIES``)."""
        self.keys: dict[str, None] = {}
        """Request keys, least recently used first."""

    def all_keys(self) -> Iterator[str]:
        yield from self.fixed
        yield from self.keys


class LinkGraph:
    """Bounded bipartite account–key graph.

    >>> g = LinkGraph(per_account=2, per_key=2)
    >>> for a in ("x", "y", "z"):
    ...     _ = g.hold(a, None, "agent:sdk")
    >>> list(g.nodes["agent:sdk"].members), g.nodes["agent:sdk"].units
    (['y', 'z'], 3)
    >>> g.hold("z", None, "ip:1"), g.hold("z", None, "ip:2"), g.hold("z", None, "ip:3")
    (True, True, True)
    >>> list(g.holders["z"].keys), "agent:sdk" in g.nodes
    (['agent:sdk', 'ip:3'], True)
    """

    def __init__(
        self,
        per_account: int = 32,
        per_key: int = 65_536,
        bar: Callable[[str], int | None] | None = None,
    ) -> None:
        self.per_account = per_account
        self.per_key = per_key
        self.bar = bar
        """Units a new key needs to count, where that is more than its family's
        ``MIN_UNITS`` (``baseline.SignupBaseline.bar``)."""
        self.nodes: dict[str, KeyNode] = {}
        self.holders: dict[str, Holder] = {}
        self.edges = 0
        self.added = 0
        """Edges ever added (the linker refreshes its clusters when enough are new)."""

    def holder(self, account: str, org: str | None) -> Holder:
        h = self.holders.get(account)
        if h is None:
            h = self.holders[account] = Holder(org)
        return h

    def hold(self, account: str, org: str | None, key: str) -> bool:
        """Record that ``account`` used ``key``; True when it is a new edge."""
        h = self.holders.get(account)
        if h is None:
            h = self.holders[account] = Holder(org)
        fam = key[: key.index(":")]
        if fam in LIFETIME_FAMILIES:
            if key in h.fixed:
                return False
            h.fixed.append(key)
        else:
            keys = h.keys
            if key in keys:  # used again: now the most recently used
                del keys[key]
                keys[key] = None
                return False
            keys[key] = None
            if len(keys) > self.per_account:
                self._unlink(account, self._victim(keys))
        node = self.nodes.get(key)
        if node is None:
            node = self.nodes[key] = KeyNode(fam)
            if self.bar is not None:
                need = self.bar(key)
                if need is not None and need > node.min_units:
                    node.min_units = need
        node.add(account, org)
        self.edges += 1
        self.added += 1
        if len(node.members) > self.per_key:
            oldest = next(iter(node.members))
            node.remove(oldest, evicted=True)
            self._drop_from_holder(oldest, key)
        return True

    def _victim(self, keys: dict[str, None]) -> str:
        """The key to drop from a full budget: the oldest unshared one among the first few."""
        first = next(iter(keys))
        for i, k in enumerate(keys):
            if i >= SPARE:
                break
            if len(self.nodes[k].members) < 2:
                return k
        return first

    def _drop_from_holder(self, account: str, key: str) -> None:
        h = self.holders[account]
        if key in h.keys:
            del h.keys[key]
        else:
            h.fixed.remove(key)
        self.edges -= 1

    def _unlink(self, account: str, key: str) -> None:
        """Remove the edge from both sides (a key nobody holds any more is forgotten)."""
        self._drop_from_holder(account, key)
        node = self.nodes[key]
        node.remove(account)
        if not node.members:
            del self.nodes[key]

    def seen_together(self, head: str, tail: str) -> None:
        """A prompt's two scaffold edges were seen together (see ``KeyNode.seen_with``)."""
        h, t = self.nodes.get(head), self.nodes.get(tail)
        if h is not None:
            h.seen_with(tail)
        if t is not None:
            t.seen_with(head)

    def weight(self, key: str) -> float:
        node = self.nodes.get(key)
        return node.weight if node is not None else 0.0
