"""Sightings per publisher: whose indicator each sighting is of, and a safe file name for it.

A sighting is sent back to the member that published the indicator (the verified signer of
the bundle that carried it: ``IndicatorRef.member``). Each sighting we write names that member
in ``x_distillwatch_publisher_ref`` (its STIX identity id, ``sign.identity_id``), so a
publisher reading a collection or a folder shared by several publishers keeps its own
(``intel sightings``). The property is a claim of the signer of the sightings, covered by its
signature; it holds an identity id, never anything about a local account.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from distillwatch.share.sign import identity_id

PUBLISHER_REF: Final = "x_distillwatch_publisher_ref"
"""Custom STIX property of a sighting: the identity id of the indicator's publisher."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_name(member: str) -> str:
    """A member name as a file-name part: itself when it is only ``A-Za-z0-9_-`` (at most 48),
    else its safe characters and 8 hex of its SHA-256 (distinct names stay distinct).

    >>> safe_name("member-a")
    'member-a'
    >>> safe_name("../etc/passwd")
    'etc_passwd-7fef78f5'
    >>> safe_name("")
    'member-e3b0c442'
    """
    safe = _UNSAFE.sub("_", member).strip("_-")[:48]
    if safe and safe == member:
        return safe
    digest = hashlib.sha256(member.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe or 'member'}-{digest}"


def file_name(when: datetime, publisher: str | None) -> str:
    """``sightings-<time>-<publisher>.json`` (``sightings-<time>.json`` with none): sorted by
    name, a folder's reports are in time order.

    >>> from datetime import UTC
    >>> file_name(datetime(2026, 5, 1, tzinfo=UTC), "member-a")
    'sightings-20260501T000000000000Z-member-a.json'
    """
    tail = "" if publisher is None else f"-{safe_name(publisher)}"
    return f"sightings-{when:%Y%m%dT%H%M%S%fZ}{tail}.json"


def mark(objects: Iterable[dict[str, Any]], publisher_of: Mapping[str, str]) -> None:
    """Add ``PUBLISHER_REF`` to each sighting (a STIX JSON object) whose indicator's publisher
    is known (in place).

    >>> o = {"type": "sighting", "sighting_of_ref": "indicator--1"}
    >>> mark([o], {"indicator--1": "member-a"}); o[PUBLISHER_REF] == identity_id("member-a")
    True
    """
    for obj in objects:
        publisher = publisher_of.get(str(obj.get("sighting_of_ref")))
        if obj.get("type") == "sighting" and publisher is not None:
            obj[PUBLISHER_REF] = identity_id(publisher)


def split(
    objects: Iterable[dict[str, Any]], publisher_of: Mapping[str, str]
) -> dict[str | None, list[dict[str, Any]]]:
    """Sightings grouped by their indicator's publisher (``None``: unknown).

    >>> split([{"sighting_of_ref": "i--1"}, {"sighting_of_ref": "i--2"}], {"i--1": "a"})
    {'a': [{'sighting_of_ref': 'i--1'}], None: [{'sighting_of_ref': 'i--2'}]}
    """
    out: dict[str | None, list[dict[str, Any]]] = {}
    for obj in objects:
        out.setdefault(publisher_of.get(str(obj.get("sighting_of_ref"))), []).append(obj)
    return out
