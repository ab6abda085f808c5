"""The campaign record and ``campaigns.jsonl``, the file ``scan`` writes next to the verdicts.

One line per detected campaign: its stable id, accounts, how many of them were acted on,
the evidence that ties them together by key family, when it was first and last seen, its
volume, and its top prompt scaffolds as sketches (32-bit hashes of folded prompt edges —
no prompt text leaves the provider in this file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from distillwatch.errors import DistillwatchError


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
