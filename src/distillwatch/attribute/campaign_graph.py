"""What the report draws of a campaign: its shared keys and which of its accounts hold them.

Read from the linker at the end of a replay (read-only: its campaigns' shared keys and its
bounded account–key graph), bounded so that a 20,000-account campaign stays a picture:

* **keys**: at most ``max_keys`` of the campaign's shared keys: up to half of them from the
  strong families (cards, sign-up bursts, addresses), then the others, then more strong ones
  if room is left; within each part families interleaved (the heaviest card, the heaviest
  sign-up burst, …, then each family's second), so that every kind of evidence shows. A key
  counts when at least two members still hold it in the bounded graph and it still weighs
  something (a network a third unit no longer holds does not);
* **accounts**: at most ``max_accounts`` members, taken round-robin over the drawn keys
  (each key's busiest holder not yet drawn, then its next), so that every key drawn has
  accounts on it and a big card does not fill the sample alone; then the busiest others.

Keys are stored by pseudonym (``campaigns.key_ref``), never by value.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import msgspec

from distillwatch.attribute.campaigns import Campaign, CampaignGraph, GraphKey, key_ref
from distillwatch.attribute.keys import FAMILIES, STRONG, family
from distillwatch.attribute.linker import CampaignLinker

MAX_KEYS = 24
MAX_ACCOUNTS = 80
TRIES = 16
"""Keys looked at per key drawn, at most (a shared key may have left the bounded graph)."""


def _interleaved(keys: tuple[str, ...]) -> Iterator[str]:
    """Keys one family at a time, in order within each family (families by base weight).

    >>> list(_interleaved(("ip:1", "card:a", "ip:2", "net:1", "card:b")))
    ['card:a', 'ip:1', 'net:1', 'card:b', 'ip:2']
    """
    by_family: dict[str, list[str]] = {}
    for k in keys:
        by_family.setdefault(family(k), []).append(k)
    order = sorted(by_family, key=lambda f: (-FAMILIES.get(f, 0.0), f))
    for i in range(max((len(v) for v in by_family.values()), default=0)):
        for f in order:
            if i < len(by_family[f]):
                yield by_family[f][i]


def campaign_graph(
    linker: CampaignLinker,
    campaign: Campaign,
    *,
    max_keys: int = MAX_KEYS,
    max_accounts: int = MAX_ACCOUNTS,
) -> CampaignGraph | None:
    """The drawable structure of ``campaign`` (None when the linker no longer knows it)."""
    camp = linker.campaigns.get(campaign.campaign_id)
    if camp is None:
        return None
    members = set(campaign.accounts)
    graph = linker.graph
    chosen: list[tuple[str, list[str]]] = []
    strong = list(_interleaved(tuple(k for k in camp.keys if family(k) in STRONG)))
    weak = list(_interleaved(tuple(k for k in camp.keys if family(k) not in STRONG)))
    tried = 0

    def take(keys: list[str], limit: int) -> list[str]:
        """Draw qualifying keys from the front of ``keys`` up to ``limit``; the rest."""
        nonlocal tried
        for i, k in enumerate(keys):
            if len(chosen) >= limit or tried >= TRIES * max_keys:
                return keys[i:]
            tried += 1
            node = graph.nodes.get(k)
            if node is None or node.weight <= 0.0:  # left the graph, or says nothing now
                continue
            inside = [a for a in node.members if a in members]
            if len(inside) >= 2:
                chosen.append((k, inside))
        return []

    strong = take(strong, max_keys // 2)
    take(weak, max_keys)
    take(strong, max_keys)

    def volume(a: str) -> tuple[int, int, str]:
        """Busiest first; equals in a hashed order (ids in sequence often share a card)."""
        st = linker.states.get(a)
        return (-(st.n if st is not None else 0), zlib.crc32(a.encode()), a)

    # round-robin over the keys drawn: each key's busiest holder not drawn yet, then the
    # next, so that a big card does not take the whole sample; then the busiest of the rest
    sample: dict[str, None] = {}
    queues = [iter(sorted(inside, key=volume)) for _, inside in chosen]
    while queues and len(sample) < max_accounts:
        left = []
        for q in queues:
            if len(sample) >= max_accounts:
                break
            for a in q:
                if a not in sample:
                    sample[a] = None
                    left.append(q)
                    break
        queues = left
    for a in sorted(members, key=volume):
        if len(sample) >= max_accounts:
            break
        sample.setdefault(a, None)
    drawn = sorted(sample)
    index = {k: i for i, (k, _) in enumerate(chosen)}
    holds = []
    for a in drawn:
        h = graph.holders.get(a)
        held = {index[k] for k in h.all_keys() if k in index} if h is not None else set()
        holds.append(sorted(held))
    keys = [
        GraphKey(
            ref=key_ref(k),
            family=family(k),
            weight=round(graph.weight(k), 4),
            members=len(inside),
            units=graph.nodes[k].units,
        )
        for k, inside in chosen
    ]
    return CampaignGraph(
        keys=keys,
        accounts=drawn,
        exchanges=[-volume(a)[0] for a in drawn],
        holds=holds,
        more_keys=max(0, len(camp.keys) - len(keys)),
        more_accounts=len(members) - len(drawn),
    )


def with_graphs(linker: CampaignLinker) -> list[Campaign]:
    """The linker's detected campaigns, each with its ``graph`` (see ``campaign_graph``)."""
    return [msgspec.structs.replace(c, graph=campaign_graph(linker, c)) for c in linker.detected()]
