"""Received indicators → an O(1) index: keyed hashes by digest, sketches by LSH band, rules.

``IntelIndex`` holds the indicators of verified bundles: keyed hashes in one dict by digest
(a look-up is one dict access), sketches by LSH band, behaviour rules compiled into a
``RuleTable`` per engine signal layout (``match_rules``). Later versions of an indicator
(``modified``) replace earlier ones, ``revoked`` ones are dropped and leave a tombstone, and
expired ones (``valid_until``) are pruned as the index's time moves on. Only indicators of our
sharing group are indexed, and only rules over signals we run at the versions we run (others
are skipped with a logged reason).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from distillwatch.share.errors import IntelError
from distillwatch.share.keys import GroupKeyer, Sketch, edge_text, normalise
from distillwatch.share.pattern import PATTERN_TYPE, KeyedHash, ScaffoldSketch, parse
from distillwatch.share.rules import BehaviourRule, RuleTable, Valued, local_versions
from distillwatch.share.sign import parse_ts

log = logging.getLogger("distillwatch.share")

DIGEST_CACHE: Final = 1 << 20
"""Raw values whose digests are kept (cleared when full: a bound, not an LRU)."""


@dataclass(slots=True)
class IndicatorRef:
    """One indexed indicator (what a match points back to)."""

    indicator_id: str
    member: str
    kind: str
    confidence: int
    modified: float
    valid_until: float | None
    campaign: str | None


@dataclass
class ImportStats:
    indexed: int = 0
    revoked: int = 0
    replaced: int = 0
    foreign_group: int = 0
    invalid: int = 0
    expired: int = 0
    skipped_rules: int = 0
    """Behaviour rules over a signal we do not run, or another version of one."""


_SKIPS_LOGGED: set[tuple[str, str]] = set()
"""(indicator id, reason) already logged: an index rebuilt from the same bundles (the
gateway's feed, at each new bundle) does not log a skipped rule again."""


class IntelIndex:
    """Every usable received indicator, ready for O(1) look-ups."""

    def __init__(
        self, group: str, group_secret: bytes, signals: Mapping[str, int] | None = None
    ) -> None:
        self.group = group
        self.signals = local_versions() if signals is None else signals
        """The signal versions we run (a rule reading another one is skipped)."""
        self._secret = group_secret
        self.keyers: dict[str, GroupKeyer] = {}
        self.refs: dict[str, IndicatorRef] = {}
        self.by_digest: dict[bytes, list[IndicatorRef]] = {}
        self.by_band: dict[bytes, list[tuple[IndicatorRef, Sketch, float]]] = {}
        self.revoked: dict[str, float] = {}
        """Tombstones: revoked indicator id → the revoking version's ``modified``."""
        self.rules: dict[str, tuple[IndicatorRef, BehaviourRule]] = {}
        self.skipped: dict[str, str] = {}
        """Rules not indexed: indicator id → why (a signal or version we do not run)."""
        self._table: tuple[Sequence[tuple[str, int]], RuleTable[IndicatorRef]] | None = None
        """The rules compiled for the last engine layout asked for (dropped on any change)."""
        self._where: dict[str, list[bytes]] = {}
        """Indicator id → the digest or band keys it is filed under (to replace or revoke)."""
        self.lengths: dict[tuple[str, str], set[int]] = {}
        """(epoch, edge) → scaffold lengths indexed (a local prompt is cut at each)."""
        self.stats = ImportStats()
        self.generation = 0
        """Bundles added so far: a matcher re-checks what it already saw when this changes."""
        self._digests: dict[tuple[str, str], tuple[bytes, ...]] = {}
        self._expiry: list[tuple[float, str]] = []
        self._next_expiry = math.inf

    def keyer(self, epoch: str) -> GroupKeyer:
        k = self.keyers.get(epoch)
        if k is None:
            k = self.keyers[epoch] = GroupKeyer(self._secret, self.group, epoch)
            self._digests.clear()  # cached digests lack the new epoch's
        return k

    def add_bundle(self, member: str, bundle: Mapping[str, Any], *, now: datetime) -> None:
        """Index a verified bundle's indicators (``member`` is its verified signer)."""
        self.generation += 1
        objects = bundle.get("objects") or []
        indicates = {  # a campaign, if any (an account's indicators indicate a technique)
            o.get("source_ref"): o.get("target_ref")
            for o in objects
            if isinstance(o, dict)
            and o.get("relationship_type") == "indicates"
            and str(o.get("target_ref", "")).startswith("campaign--")
        }
        for obj in objects:
            if isinstance(obj, dict) and obj.get("type") == "indicator":
                self._add(member, obj, indicates.get(obj.get("id")), now)

    def _add(
        self, member: str, obj: Mapping[str, Any], campaign: str | None, now: datetime
    ) -> None:
        iid = str(obj.get("id"))
        try:
            modified = parse_ts(str(obj.get("modified"))).timestamp()
        except ValueError:
            self.stats.invalid += 1
            return
        old = self.refs.get(iid)
        newest = old.modified if old is not None else self.revoked.get(iid)
        if newest is not None and newest >= modified:
            return  # a version we hold (or revoked) is as new
        if old is not None:
            self._remove(iid)
            self.stats.replaced += 1
        if obj.get("revoked"):
            self.revoked[iid] = modified
            self.stats.revoked += 1
            return
        if obj.get("pattern_type") != PATTERN_TYPE:
            self.stats.invalid += 1
            return
        try:
            form = parse(str(obj.get("pattern", "")))
            until = obj.get("valid_until")
            valid_until = parse_ts(str(until)).timestamp() if until else None
            confidence = int(obj.get("confidence", 50))
        except (IntelError, ValueError):
            self.stats.invalid += 1
            return
        if form.group != self.group:
            self.stats.foreign_group += 1
            return
        if valid_until is not None and valid_until <= now.timestamp():
            self.stats.expired += 1
            return
        if isinstance(form, KeyedHash):
            kind = form.kind
        else:
            kind = "scaffold" if isinstance(form, ScaffoldSketch) else "rule"
        if isinstance(form, BehaviourRule):
            why = form.unusable(self.signals)
            if why is not None:
                self.skipped[iid] = why
                self.stats.skipped_rules += 1
                if (iid, why) not in _SKIPS_LOGGED and len(_SKIPS_LOGGED) < 100_000:
                    _SKIPS_LOGGED.add((iid, why))
                    log.warning("intel rule %s from %s skipped: %s", iid, member, why)
                return
        conf = max(0, min(100, confidence))
        ref = IndicatorRef(iid, member, kind, conf, modified, valid_until, campaign)
        self.refs[iid] = ref
        if isinstance(form, BehaviourRule):
            self.rules[iid] = (ref, form)
            self._table = None
            self._where[iid] = []
        elif isinstance(form, KeyedHash):
            self.keyer(form.epoch)
            digest = bytes.fromhex(form.digest)
            self.by_digest.setdefault(digest, []).append(ref)
            self._where[iid] = [digest]
        else:
            self.keyer(form.epoch)
            where = self._where[iid] = []
            self.lengths.setdefault((form.epoch, form.edge), set()).add(form.chars)
            for band in form.sketch.bands():
                key = _band_key(form.epoch, form.edge, form.chars, band)
                where.append(key)
                self.by_band.setdefault(key, []).append((ref, form.sketch, form.threshold))
        if valid_until is not None:
            heapq.heappush(self._expiry, (valid_until, iid))
            self._next_expiry = min(self._next_expiry, valid_until)
        self.stats.indexed += 1

    def _remove(self, iid: str) -> None:
        self.refs.pop(iid, None)
        if self.rules.pop(iid, None) is not None:
            self._table = None
        for key in self._where.pop(iid, []):
            if key in self.by_digest:
                refs = [r for r in self.by_digest[key] if r.indicator_id != iid]
                if refs:
                    self.by_digest[key] = refs
                else:
                    del self.by_digest[key]
            if key in self.by_band:
                entries = [e for e in self.by_band[key] if e[0].indicator_id != iid]
                if entries:
                    self.by_band[key] = entries
                else:
                    del self.by_band[key]

    def expire(self, now: float) -> None:
        """Drop every indicator whose ``valid_until`` has passed (the index's time only
        moves forward: an expired indicator is gone for good)."""
        heap = self._expiry
        while heap and heap[0][0] <= now:
            t, iid = heapq.heappop(heap)
            ref = self.refs.get(iid)
            if ref is not None and ref.valid_until == t:
                self._remove(iid)
                self.stats.expired += 1
        self._next_expiry = heap[0][0] if heap else math.inf

    def lookup(self, digest: bytes, now: float) -> Sequence[IndicatorRef]:
        """Live indicators with this digest: one dict access (the hot path)."""
        if now >= self._next_expiry:
            self.expire(now)
        return self.by_digest.get(digest, ())

    def digests_of(self, kind: str, value: str) -> tuple[bytes, ...]:
        """A raw local value's digests under every epoch held (cached: values repeat)."""
        key = (kind, value)
        found = self._digests.get(key)
        if found is None:
            norm = normalise(kind, value)
            found = (
                ()
                if norm is None
                else tuple(k.digest_raw(kind, norm) for k in self.keyers.values())
            )
            if len(self._digests) >= DIGEST_CACHE:
                self._digests.clear()
            self._digests[key] = found
        return found

    def match_value(self, kind: str, value: str, now: float) -> list[IndicatorRef]:
        """Indicators matching a raw local value, under every epoch we hold indicators for."""
        out: list[IndicatorRef] = []
        for digest in self.digests_of(kind, value):
            out.extend(self.lookup(digest, now))
        return out

    def match_prompt(self, prompt: str, now: float) -> list[IndicatorRef]:
        """Sketch indicators whose scaffold the prompt's folded head or tail resembles."""
        if not self.by_band:
            return []
        found: dict[str, IndicatorRef] = {}
        for (epoch, edge), lengths in self.lengths.items():
            text = edge_text(prompt, edge)
            sketches = self.keyer(epoch).cut_sketches(text, edge, lengths)
            for n, sk in sketches.items():
                for band in sk.bands():
                    for ref, theirs, threshold in self.by_band.get(
                        _band_key(epoch, edge, n, band), ()
                    ):
                        if ref.indicator_id in found:
                            continue
                        live = ref.valid_until is None or ref.valid_until > now
                        if live and sk.similarity(theirs) >= threshold:
                            found[ref.indicator_id] = ref
        return list(found.values())

    def match_signals(
        self,
        values: Mapping[str, float | None],
        versions: Mapping[str, int],
        exchanges: int,
        now: float,
    ) -> list[IndicatorRef]:
        """Behaviour rules an account's signal values (at our signal versions) satisfy."""
        return [
            ref
            for ref, rule in self.rules.values()
            if (ref.valid_until is None or ref.valid_until > now)
            and rule.matches(values, versions, exchanges)
        ]

    def match_rules(
        self,
        layout: Sequence[tuple[str, int]],
        values: Sequence[Valued],
        exchanges: int,
        now: float,
    ) -> list[IndicatorRef]:
        """Live behaviour rules satisfied by an account's signal values at ``now``, given in
        an engine's order ``layout`` (signal id and version at each position; pass the same
        object each time: the compiled rules are kept for it)."""
        if now >= self._next_expiry:
            self.expire(now)
        table = self._table
        if table is None or table[0] is not layout:
            table = self._table = (layout, RuleTable(self.rules.values(), layout))
        return table[1].match(values, exchanges)


def _band_key(epoch: str, edge: str, chars: int, band: bytes) -> bytes:
    return f"{epoch}|{edge}|{chars}|".encode() + band
