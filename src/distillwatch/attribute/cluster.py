"""Camouflage-resistant dense blocks of the account–key graph.

Three steps, all deterministic (ties broken by account id and key):

1. **Linked core.** An account's *link* is the sum over key families of
   ``min(FAMILY_CAP[f], Σ weights of its keys of f that another unit shares)``; accounts
   whose link is below ``min_link``, or that share keys of fewer than ``min_families``
   families, are peeled until none is left (a weighted k-core). One kind of coincidence —
   a popular prompt, a NAT address, proxy subnets — never links an account on its own.
2. **Dense blocks.** Inside each connected part of the core, FRAUDAR's greedy peeling
   (Hooi et al., KDD 2016) removes the account or key of least weighted degree until
   nothing is left and keeps the densest prefix (total weight / nodes). Camouflage — the
   campaign's accounts also sending ordinary traffic — only adds edges to popular,
   light keys, so the block stays the densest; its accounts are taken out and the peeling
   repeats on the rest, block by block.
3. **Filter.** Step 1 again inside the block; a block with fewer than ``min_accounts``
   units, or one organisation holding half of it, is not a campaign.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from distillwatch.attribute.keys import FAMILY_CAP, STRONG, family


@dataclass(frozen=True)
class LinkRule:
    """When an account counts as linked: enough capped weight, families and strong evidence.

    >>> rule = LinkRule(min_link=0.8, min_families=2, min_strong=0.3)
    >>> rule.value({"card": 0.45, "scaffold": 0.2, "net": 0.9})
    0.9
    >>> rule.value({"scaffold": 0.5, "net": 0.9, "switch": 0.4}) is None  # nothing strong
    True
    """

    min_link: float = 0.7
    min_families: int = 2
    min_strong: float = 0.35
    bridge: float = 0.16
    """Keys lighter than this never join two groups into one campaign (they still add to an
    account's link): any network, client or scaffold key (their base weight is below it even
    at two units) — a client library or public template two operators both use — and an
    address shared by more than a few dozen units (``graph.SATURATION`` keeps cards, sign-up
    bursts and model switches above it)."""

    def value(self, per: Mapping[str, float]) -> float | None:
        """The link of per-family weights, or None when it does not qualify."""
        if len(per) < self.min_families:
            return None
        total = strong = 0.0
        for f, v in per.items():
            c = min(FAMILY_CAP[f], v)
            total += c
            if f in STRONG:
                strong += c
        if total < self.min_link - 1e-9 or strong < self.min_strong - 1e-9:
            return None
        return round(total, 6)


@dataclass(frozen=True)
class Block:
    """A dense group of accounts and the keys that tie it together."""

    accounts: tuple[str, ...]
    """Sorted account ids."""
    link: dict[str, float]
    """Each account's link to the rest of the block (family-capped weight)."""
    by_family: dict[str, float]
    """Weight of the keys shared inside the block, by family (each key counted once)."""
    keys: tuple[str, ...] = field(default=())
    """Shared keys, heaviest first."""
    density: float = 0.0
    units: int = 0
    """Distinct holders, an organisation counting once."""


def _links(
    accounts: Iterable[str],
    adj: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    orgs: Mapping[str, str | None],
    rule: LinkRule,
) -> dict[str, float]:
    """The linked core of ``accounts``: each survivor's link (see the module docstring).

    A key counts for an account while another *unit* (organisation, or account without one)
    among the survivors holds it; per key the survivors are counted by unit, so peeling is
    O(edges): an account is looked at again only when one of its keys stops being shared.
    """
    alive = set(accounts)
    unit_of = {a: orgs.get(a) or f"acct:{a}" for a in alive}
    holders: dict[str, list[str]] = defaultdict(list)
    units: dict[str, dict[str, int]] = defaultdict(dict)
    for a in sorted(alive):
        u = unit_of[a]
        for k in adj[a]:
            holders[k].append(a)
            c = units[k]
            c[u] = c.get(u, 0) + 1

    def link(a: str) -> float | None:
        per: dict[str, float] = {}
        for k in adj[a]:
            if len(units[k]) >= 2:  # a holds it, and so does another unit
                f = family(k)
                per[f] = per.get(f, 0.0) + weights[k]
        return rule.value(per)

    value: dict[str, float] = {}
    queue = sorted(alive)
    while queue:
        lost: set[str] = set()
        for a in queue:
            if a not in alive:
                continue
            v = link(a)
            if v is not None:
                value[a] = v
                continue
            alive.discard(a)
            u = unit_of[a]
            for k in adj[a]:
                c = units[k]
                c[u] -= 1
                if not c[u]:
                    del c[u]
                    if len(c) == 1:  # the key is no longer shared: its holders look again
                        lost.update(b for b in holders[k] if b in alive)
        queue = sorted(lost)
    return {a: value[a] for a in sorted(alive)}


def _components(
    accounts: Sequence[str],
    adj: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    bridge: float,
) -> list[list[str]]:
    """Connected parts of ``accounts`` through keys of weight ``bridge`` or more."""
    parent = {a: a for a in accounts}

    def root(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first: dict[str, str] = {}
    for a in accounts:
        for k in adj[a]:
            if weights[k] < bridge:
                continue
            b = first.setdefault(k, a)
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    parts: dict[str, list[str]] = defaultdict(list)
    for a in accounts:
        parts[root(a)].append(a)
    return [parts[r] for r in sorted(parts)]


def peel(
    accounts: Sequence[str], adj: Mapping[str, Sequence[str]], weights: Mapping[str, float]
) -> tuple[list[str], float]:
    """FRAUDAR's greedy peeling: the accounts of the densest prefix, and its density.

    >>> adj = {"a": ["k1", "k2"], "b": ["k1", "k2"], "c": ["k1", "k2"], "d": ["k3"], "e": ["k3"]}
    >>> w = {"k1": 1.0, "k2": 1.0, "k3": 0.2}
    >>> peel(sorted(adj), adj, w)
    (['a', 'b', 'c'], 1.2)
    """
    acc = sorted(accounts)
    keys = sorted({k for a in acc for k in adj[a]})
    kidx = {k: len(acc) + i for i, k in enumerate(keys)}
    nbrs: list[list[int]] = [[] for _ in range(len(acc) + len(keys))]
    wt = [0.0] * len(acc) + [weights[k] for k in keys]
    for i, a in enumerate(acc):
        for k in adj[a]:
            j = kidx[k]
            nbrs[i].append(j)
            nbrs[j].append(i)
    pri = [0.0] * len(nbrs)
    for i in range(len(acc)):
        for j in nbrs[i]:
            pri[i] += wt[j]
            pri[j] += wt[j]
    total = sum(pri[len(acc) :])
    alive = [True] * len(nbrs)
    heap = [(p, i) for i, p in enumerate(pri)]
    heapq.heapify(heap)
    n = len(nbrs)
    best, best_at = total / n if n else 0.0, 0
    order: list[int] = []
    while heap:
        p, i = heapq.heappop(heap)
        if not alive[i] or p != pri[i]:
            continue
        alive[i] = False
        order.append(i)
        total -= p
        n -= 1
        for j in nbrs[i]:
            if alive[j]:
                pri[j] -= wt[j] if i < len(acc) else wt[i]
                heapq.heappush(heap, (pri[j], j))
        if n and total / n > best + 1e-12:
            best, best_at = total / n, len(order)
    removed = set(order[:best_at])
    return [a for i, a in enumerate(acc) if i not in removed], round(best, 6)


def find_blocks(
    adj: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    orgs: Mapping[str, str | None],
    *,
    rule: LinkRule | None = None,
    min_accounts: int = 3,
    max_blocks: int = 256,
) -> list[Block]:
    """Dense blocks of the graph ``adj`` (account → its keys of positive ``weights``).

    >>> adj = {f"a{i}": ["card:1", "signup:d:1", f"ip:{i}"] for i in range(4)}
    >>> adj |= {f"o{i}": ["ip:nat", "signup:school:1"] for i in range(5)}
    >>> w = {k: 0.4 for ks in adj.values() for k in ks}
    >>> orgs = {a: ("school" if a[0] == "o" else None) for a in adj}
    >>> [b.accounts for b in find_blocks(adj, w, orgs)]
    [('a0', 'a1', 'a2', 'a3')]
    """
    rule = rule or LinkRule()
    core = _links(adj, adj, weights, orgs, rule)
    blocks: list[Block] = []
    for part in _components(list(core), adj, weights, rule.bridge):
        rest = part
        while len(rest) >= min_accounts and len(blocks) < max_blocks:
            dense, density = peel(rest, adj, weights)
            if not dense:
                break
            # a popular key can make two groups denser together than apart: split the block
            # where only light keys (weight below ``bridge``) join it
            for piece in _components(dense, adj, weights, rule.bridge):
                block = _block(piece, density, adj, weights, orgs, rule)
                if block is not None and block.units >= min_accounts:
                    blocks.append(block)
            taken = set(dense)
            rest = list(_links([a for a in rest if a not in taken], adj, weights, orgs, rule))
    return _expand(blocks, core, adj, weights, orgs, rule)


def attach_link(
    keys: Iterable[str],
    org: str | None,
    holders: Mapping[str, Mapping[int, set[str]]],
    weights: Mapping[str, float],
    rule: LinkRule,
) -> dict[int, float]:
    """An outside account's link into each block it qualifies for (``LinkRule.value``).

    ``holders`` maps a key to the blocks holding it and by which units (organisations or
    ``acct:<id>``); keys held in a block only by the account's own organisation do not count.
    """
    per: dict[int, dict[str, float]] = defaultdict(dict)
    for k in keys:
        for i, units in holders.get(k, {}).items():
            if org is not None and units == {org}:
                continue
            f = family(k)
            fam = per[i]
            fam[f] = fam.get(f, 0.0) + weights[k]
    out = {}
    for i, fam in sorted(per.items()):
        v = rule.value(fam)
        if v is not None:
            out[i] = v
    return out


def _expand(
    blocks: list[Block],
    core: Mapping[str, float],
    adj: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    orgs: Mapping[str, str | None],
    rule: LinkRule,
) -> list[Block]:
    """Attach linked accounts outside every block to the block they link into most.

    Peeling keeps the densest part; a campaign's newest accounts, with few keys yet, sit at
    its edge and are attached here by the same rule the linker applies online.
    """
    if not blocks:
        return blocks
    holders: dict[str, dict[int, set[str]]] = defaultdict(dict)
    for i, b in enumerate(blocks):
        for a in b.accounts:
            unit = orgs.get(a) or f"acct:{a}"
            for k in adj[a]:
                holders[k].setdefault(i, set()).add(unit)
    joined: dict[int, dict[str, float]] = defaultdict(dict)
    taken = {a for b in blocks for a in b.accounts}
    for a in core:
        if a in taken:
            continue
        links = attach_link(adj[a], orgs.get(a), holders, weights, rule)
        best = max(((v, -i) for i, v in links.items()), default=None)
        if best is not None:
            joined[-best[1]][a] = best[0]
    out = []
    for i, b in enumerate(blocks):
        extra = joined.get(i)
        if extra:
            link = {**b.link, **extra}
            b = replace(b, accounts=tuple(sorted(link)), link=dict(sorted(link.items())))
        out.append(b)
    return out


def _block(
    dense: Sequence[str],
    density: float,
    adj: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    orgs: Mapping[str, str | None],
    rule: LinkRule,
) -> Block | None:
    link = _links(dense, adj, weights, orgs, rule)
    if not link:
        return None
    members = list(link)
    units = {orgs.get(a) or f"acct:{a}" for a in members}
    by_org: dict[str, int] = defaultdict(int)
    for a in members:
        org = orgs.get(a)
        if org is not None:
            by_org[org] += 1
    if by_org and max(by_org.values()) * 2 >= len(members):
        return None  # one organisation's accounts: expected to share everything
    count: dict[str, int] = defaultdict(int)
    for a in members:
        for k in adj[a]:
            count[k] += 1
    shared = sorted((k for k, c in count.items() if c >= 2), key=lambda k: (-weights[k], k))
    by_family: dict[str, float] = defaultdict(float)
    for k in shared:
        by_family[family(k)] += weights[k]
    return Block(
        accounts=tuple(members),
        link=link,
        by_family={f: round(v, 4) for f, v in sorted(by_family.items())},
        keys=tuple(shared),
        density=density,
        units=len(units),
    )
