"""The campaign record and ``campaigns.jsonl``, the file ``scan`` writes next to the verdicts.

One line per detected campaign: its stable id, accounts, how many of them were acted on,
the evidence that ties them together by key family, when it was first and last seen, its
volume, and its top prompt scaffolds as sketches (32-bit hashes of folded prompt edges —
no prompt text leaves the provider in this file).

``graph`` (optional, added later; readers that do not know it ignore it) holds what the
report draws: the campaign's heaviest shared keys — by pseudonym, never by value — and which
of a bounded sample of its accounts hold each (``attribute.campaign_graph`` builds it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from distillwatch.errors import DistillwatchError


class GraphKey(msgspec.Struct, frozen=True, kw_only=True):
    """One shared key of a campaign's picture: its family and a pseudonym, never its value."""

    ref: str
    """``key_ref`` of the key."""
    family: str
    weight: float
    """Its weight in the linking graph at the end of the log."""
    members: int
    """Members of the campaign holding it (as the bounded linking graph holds them)."""
    units: int
    """Its holders in all, outside the campaign too, an organisation counting once."""


class CampaignGraph(msgspec.Struct, frozen=True, kw_only=True):
    """The key → account structure of a campaign, bounded: at most a few dozen keys and
    accounts, with counts of what was left out."""

    keys: list[GraphKey]
    """Shared keys drawn, heaviest first within each family, families interleaved."""
    accounts: list[str]
    """The accounts drawn (a sample when the campaign is large)."""
    exchanges: list[int]
    """Exchanges of each drawn account."""
    holds: list[list[int]]
    """For each drawn account, the indexes into ``keys`` of the keys it holds."""
    more_keys: int = 0
    """Shared keys of the campaign not drawn."""
    more_accounts: int = 0
    """Members not drawn."""


def key_ref(key: str) -> str:
    """A key's pseudonym: its family and 12 hex of its SHA-256; a scaffold key is already a
    sketch (as in ``Campaign.scaffolds``) and stays itself.

    Not anonymous for small value spaces: whoever holds a candidate address can hash it and
    compare. The report's pictures show neither (only ``family n`` labels and sketches).

    >>> key_ref("ip:203.0.113.9")
    'ip:c22db0284eb3'
    >>> key_ref("scaffold:h1a2b3c4d")
    'scaffold:h1a2b3c4d'
    """
    fam, _, _ = key.partition(":")
    if fam == "scaffold":
        return key
    return f"{fam}:{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class Campaign(msgspec.Struct, frozen=True, kw_only=True):
    """A group of accounts the linker attributes to one operator."""

    campaign_id: str
    accounts: list[str]
    size: int
    acted: int
    """Accounts of the campaign acted on (throttle or stronger) by the end of the log."""
    evidence: dict[str, float]
    """Weight of the keys the accounts share, by family (card, signup, ip, net, agent, …)."""
    shared_keys: dict[str, int]
    """How many distinct keys of each family the accounts share."""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    exchanges: int = 0
    scaffolds: list[str] = msgspec.field(default_factory=list)
    """Top shared prompt-scaffold sketches (``scaffold:<hash>``), most weight first."""
    graph: CampaignGraph | None = None
    """What the report draws (``CampaignGraph``); absent in files written before it."""


def campaign_id(earliest_account: str, first_key: str) -> str:
    """A stable id: a hash of the campaign's earliest account and its heaviest key.

    >>> campaign_id("acct_1", "card:pm_9")
    'camp_fc5977933c'
    """
    digest = hashlib.sha256(f"{earliest_account}|{first_key}".encode()).hexdigest()
    return f"camp_{digest[:10]}"


def write_campaigns(path: Path, campaigns: Iterable[Campaign]) -> int:
    """Write one JSON line per campaign, sorted by id, atomically; returns how many."""
    ordered = sorted(campaigns, key=lambda c: c.campaign_id)
    tmp = path.with_name(f".tmp-{path.name}")
    enc = msgspec.json.Encoder()
    try:
        with tmp.open("wb") as f:
            for c in ordered:
                f.write(enc.encode(c))
                f.write(b"\n")
        tmp.replace(path)
    except OSError as exc:
        raise DistillwatchError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return len(ordered)


def read_campaigns(path: Path) -> list[Campaign]:
    """Read a ``campaigns.jsonl`` back (tests, reports)."""
    dec = msgspec.json.Decoder(Campaign)
    out = []
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(dec.decode(line))
                except msgspec.DecodeError as exc:
                    raise DistillwatchError(f"{path}:{n}: not a campaign record: {exc}") from exc
    return out
