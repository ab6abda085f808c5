"""``intel sightings``: what the other members saw of the indicators we published.

The publisher's side of the sightings loop (``share.sightings`` is the sender's). Sightings
envelopes (files, folders of them, or pulled from a TAXII collection into a folder) are
verified exactly as received intel is (``sign.verify`` against the members file: unsigned,
tampered, expired, not-yet-valid and unknown-signer envelopes are rejected with their reason,
and a sighting must be created by its envelope's signer). Of the accepted ones, only the
sightings of **our** indicators count: those whose ``x_distillwatch_publisher_ref`` (the
sender's attribution, ``publishers.PUBLISHER_REF``) is our identity id.

Per indicator: how many members sighted it, how many accounts they saw (the sum of each
member's counts: the gateway's sightings are deltas over disjoint windows, each account
counted once per indicator, so the sum is the number of distinct accounts across the
members), the first and last time seen. A sighting id seen twice (the same envelope pulled
and copied, or sent twice after a crash) counts once; of two versions of one id, the later
``modified`` counts (an id is scoped to the member that created it).

>>> from datetime import UTC
>>> r = Sighted("indicator--1")
>>> r.add("member-b", 2, datetime(2026, 5, 1, tzinfo=UTC), None)
>>> r.add("member-c", 3, None, datetime(2026, 5, 2, tzinfo=UTC))
>>> r.add("member-b", 1, None, None)
>>> r.members, r.accounts, r.by_member
(2, 6, {'member-b': 3, 'member-c': 3})
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from distillwatch.clock import format_rfc3339
from distillwatch.share.errors import IntelError, RejectedBundleError
from distillwatch.share.files import load_envelope
from distillwatch.share.publishers import PUBLISHER_REF
from distillwatch.share.sign import identity_id, parse_ts, verify
from distillwatch.share.trust import TrustPolicy

log = logging.getLogger("distillwatch.share")

MAX_COUNT = 999_999_999
"""STIX's largest sighting ``count``."""


@dataclass
class Sighted:
    """One of our indicators: who sighted it, how many accounts, when."""

    indicator_id: str
    by_member: dict[str, int] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    sightings: int = 0

    def add(self, member: str, count: int, first: datetime | None, last: datetime | None) -> None:
        self.by_member[member] = self.by_member.get(member, 0) + count
        self.sightings += 1
        for t in (first, last):
            if t is not None:
                self.first_seen = t if self.first_seen is None else min(self.first_seen, t)
                self.last_seen = t if self.last_seen is None else max(self.last_seen, t)

    @property
    def members(self) -> int:
        return len(self.by_member)

    @property
    def accounts(self) -> int:
        """Distinct accounts across the members (each member's deltas added up)."""
        return sum(self.by_member.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "indicator_id": self.indicator_id,
            "members": self.members,
            "accounts": self.accounts,
            "by_member": dict(sorted(self.by_member.items())),
            "first_seen": _ts(self.first_seen),
            "last_seen": _ts(self.last_seen),
            "sightings": self.sightings,
        }


@dataclass
class SightingsReport:
    """The sightings of our indicators in the envelopes read, and what was left out."""

    member: str
    indicators: dict[str, Sighted] = field(default_factory=dict)
    accepted: int = 0
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    counted: int = 0
    duplicates: int = 0
    """Sightings whose id was read before (counted once)."""
    others: int = 0
    """Sightings of indicators another publisher published (or attributed to none)."""
    malformed: int = 0

    def rows(self) -> list[Sighted]:
        """Most accounts first, then by indicator id."""
        return sorted(self.indicators.values(), key=lambda s: (-s.accounts, s.indicator_id))

    def to_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "identity": identity_id(self.member),
            "envelopes": {
                "accepted": self.accepted,
                "rejected": [{"file": str(p), "reason": r} for p, r in self.rejected],
            },
            "sightings": {
                "counted": self.counted,
                "duplicates": self.duplicates,
                "other_publishers": self.others,
                "malformed": self.malformed,
            },
            "indicators": [s.to_json() for s in self.rows()],
        }


@dataclass(frozen=True)
class _One:
    """One accepted sighting of one of our indicators."""

    member: str
    indicator_id: str
    count: int
    first: datetime | None
    last: datetime | None
    modified: str


def envelope_files(paths: Iterable[Path]) -> list[Path]:
    """The files given and the ``*.json`` files of the folders given (not the hidden ones:
    state files, files being written), each once; ``IntelError`` for a path that is neither."""
    out: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for p in sorted(path.glob("*.json")):
                if not p.name.startswith(".") and p.is_file():
                    out.setdefault(p, None)
        elif path.is_file():
            out.setdefault(path, None)
        else:
            raise IntelError(f"{path}: no such file or folder")
    return list(out)


def read_sightings(
    envelopes: Sequence[Path], *, policy: TrustPolicy, member: str, now: datetime
) -> SightingsReport:
    """Verify sightings envelope files at ``now`` and count the sightings of ``member``'s
    indicators; a rejected envelope is kept with its reason (never fatal), an unreadable file
    is an ``IntelError``."""
    me = identity_id(member)
    report = SightingsReport(member)
    kept: dict[tuple[str, str], _One] = {}
    for path in envelopes:
        try:
            signer, bundle = verify(load_envelope(path), policy.signers, now=now)
        except RejectedBundleError as exc:
            report.rejected.append((path, str(exc)))
            continue
        report.accepted += 1
        for obj in bundle.get("objects") or []:
            if not isinstance(obj, dict) or obj.get("type") != "sighting":
                continue
            if obj.get(PUBLISHER_REF) != me:
                report.others += 1
                continue
            one = _parse(signer.member, obj)
            if one is None:
                report.malformed += 1
                log.warning("intel sighting %s from %s left out: malformed", obj.get("id"), path)
                continue
            key = (one.member, str(obj["id"]))  # an id is its creator's (the signer)
            before = kept.get(key)
            if before is not None:
                report.duplicates += 1
                if before.modified >= one.modified:
                    continue  # the same sighting again
            kept[key] = one
    for one in kept.values():
        row = report.indicators.get(one.indicator_id)
        if row is None:
            row = report.indicators[one.indicator_id] = Sighted(one.indicator_id)
        row.add(one.member, one.count, one.first, one.last)
    report.counted = len(kept)
    return report


def _parse(member: str, obj: dict[str, Any]) -> _One | None:
    """A sighting's fields, or ``None`` when one is malformed (no count: one sighting)."""
    sid, iid, count = obj.get("id"), obj.get("sighting_of_ref"), obj.get("count", 1)
    if not isinstance(sid, str) or not sid.startswith("sighting--"):
        return None
    if not isinstance(iid, str) or not iid.startswith("indicator--"):
        return None
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        return None
    try:
        first, last = (
            None if obj.get(k) is None else parse_ts(str(obj[k]))
            for k in ("first_seen", "last_seen")
        )
        modified = parse_ts(str(obj.get("modified") or obj.get("created")))
    except ValueError:
        return None
    return _One(member, iid, count, first, last, format_rfc3339(modified))


def _ts(t: datetime | None) -> str | None:
    return None if t is None else format_rfc3339(t)
