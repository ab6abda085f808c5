"""Sightings sent back while the gateway serves: what matched since the last report.

``scan --intel --sightings`` writes the sightings of one replay (``IntelMatcher.sightings``:
every match, counted once). A gateway runs for months, so its reports carry **only what is
new**: ``SightingsOutbox.saw`` is told (by the feed, on the engine's thread) each time a
local account matches an indicator it had not matched before; every report
(``take``: on the event loop, a few dictionary operations; the work it returns runs in a
thread) holds one STIX sighting per indicator that new accounts matched since the previous
report:

* ``count``: how many local accounts matched the indicator **for the first time** since the
  previous report (each account counted once per indicator, ever);
* ``first_seen`` / ``last_seen``: when the first and the last of those matches happened (the
  exchanges' times);
* a new sighting (a new id) per report: sightings are deltas over disjoint windows, never new
  versions of one another, so a publisher adds up one member's counts of an indicator for the
  number of distinct accounts that matched it there.

Nothing identifies an account: a sighting is an indicator id, a count and two times (the
indicator's own id, our identity, its publisher's identity: ``publishers.PUBLISHER_REF``).
A report is **one envelope per publisher** (the member whose signed bundle carried the
indicator, ``IndicatorRef.member``), signed as ``write_sightings`` signs (``sign.sign``,
7 days), written to the outbox folder (``sightings-<time>-<publisher>.json``, the name made
safe: ``publishers.safe_name``) and, with a TAXII push for that publisher (its own in
``pushes``, else the fallback ``push``), added to that collection. A publisher with neither is
written to the outbox only (logged once). One that could not be pushed stays queued and is
pushed again at the next report (a refusal for good, such as ``replayed``, is not retried); a
collection that fails holds back only the envelopes queued for it.

What was reported, per indicator (a count, no account), and the queue (with the publisher of
each queued file) live in ``<outbox>/.sightings-state.json``, so a restart does not send again
what was sent: the gateway's restore replays its log and finds the same matches, and only the
accounts beyond the count already reported are new. The envelope is written before the state,
so a crash between the two sends a report twice rather than never. A state file written before
reports were split per publisher (no ``publishers``) still loads: its queued files hold every
publisher's sightings and go to the fallback collection.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillwatch.share.errors import IntelError
from distillwatch.share.files import load_envelope, write_json
from distillwatch.share.index import IndicatorRef
from distillwatch.share.publishers import file_name, mark
from distillwatch.share.sign import identity_id, load_private, sign

log = logging.getLogger("distillwatch.share")

STATE_NAME: Final = ".sightings-state.json"
STATE_FORMAT: Final = "distillwatch-sightings-state/1"
TTL: Final = timedelta(days=7)
"""How long a sightings envelope is valid (as ``write_sightings``)."""
KEEP_AFTER_EXPIRY: Final = timedelta(days=30)
"""A reported count is forgotten this long after its indicator expired (it cannot match)."""

Push = Callable[[dict[str, Any]], int]
"""Adds a signed envelope to the TAXII collection: ``taxii_client.push_envelope``, bound."""


@dataclass(frozen=True)
class _New:
    """One indicator's matches since the last report."""

    indicator_id: str
    publisher: str
    count: int
    first: float
    last: float


class SightingsOutbox:
    """Counts new matches per indicator and sends them back, as signed STIX sightings, to
    each indicator's publisher."""

    def __init__(
        self,
        folder: Path,
        member: str,
        key: Ed25519PrivateKey,
        *,
        push: Push | None = None,
        pushes: Mapping[str, Push] | None = None,
        reported: Mapping[str, tuple[int, float | None]] | None = None,
        unpushed: list[str] | None = None,
        publishers: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.member = member
        self._key = key
        self.push = push
        """The fallback collection: every publisher without one of its own in ``pushes``."""
        self.pushes: dict[str, Push] = dict(pushes or {})
        """Publisher (member name) → its own collection."""
        self.state = folder / STATE_NAME
        self._lock = threading.Lock()
        """Guards the counts below; held for in-memory work only (the event loop takes it)."""
        self._io = threading.Lock()
        """One report's files and pushes at a time (threads only)."""
        self._counted: dict[str, set[str]] = {}
        """Per local account, the indicators it was counted for (memory only, never written)."""
        self._times: dict[str, list[float]] = {}
        """Per indicator, when each account counted for it matched it first."""
        self._until: dict[str, float | None] = {}
        self._publisher: dict[str, str] = {}
        """Per indicator, its publisher (the signer of the bundle it matched from)."""
        self._dirty: set[str] = set()
        self._reported: dict[str, int] = {k: n for k, (n, _) in (reported or {}).items()}
        self._reported_until: dict[str, float | None] = {
            k: u for k, (_, u) in (reported or {}).items()
        }
        self.unpushed: list[str] = list(unpushed or [])
        """Outbox files not on their TAXII collection yet, oldest first."""
        self.queued_for: dict[str, str] = {
            n: p for n, p in (publishers or {}).items() if n in self.unpushed
        }
        """Queued file → the publisher it was written for; a queued file not here is a report
        from before the split (every publisher's sightings), pushed to the fallback."""
        self._outbox_only: set[str] = set()
        """Publishers already logged as having no collection (logged once)."""

    @classmethod
    def open(
        cls,
        folder: Path,
        *,
        member: str,
        key: Path,
        push: Push | None = None,
        pushes: Mapping[str, Push] | None = None,
    ) -> SightingsOutbox:
        """The outbox folder (created), our signing key and the state a previous run left;
        ``IntelError`` (one line) when one of them is unusable."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IntelError(
                f"cannot create the sightings folder {folder}: {exc.strerror or exc}"
            ) from None
        private = load_private(key)
        reported, unpushed, publishers = _read_state(folder / STATE_NAME)
        return cls(
            folder,
            member,
            private,
            push=push,
            pushes=pushes,
            reported=reported,
            unpushed=unpushed,
            publishers=publishers,
        )

    @property
    def pushing(self) -> bool:
        """Whether any sightings go to TAXII."""
        return self.push is not None or bool(self.pushes)

    def route(self, publisher: str | None) -> Push | None:
        """Where ``publisher``'s sightings are pushed (``None``: a report from before the split,
        to the fallback); ``None``: the outbox only."""
        if publisher is None:
            return self.push
        return self.pushes.get(publisher, self.push)

    # -- counting (the engine's thread) ------------------------------------------------

    def saw(self, account_id: str, refs: Mapping[str, IndicatorRef], t: float) -> None:
        """``account_id`` has matched ``refs`` (every indicator it matched so far; the new
        ones at time ``t``). Cheap when nothing is new: the feed calls it for every account
        when an index is swapped in."""
        done = self._counted.get(account_id)
        if len(refs) == (0 if done is None else len(done)):  # refs only grow
            return
        with self._lock:
            if done is None:
                done = self._counted[account_id] = set()
            for iid, ref in refs.items():
                if iid not in done:
                    done.add(iid)
                    self._times.setdefault(iid, []).append(t)
                    self._until[iid] = ref.valid_until
                    self._publisher[iid] = ref.member
                    self._dirty.add(iid)

    # -- reporting ------------------------------------------------------------------------

    def take(self, now: float) -> Callable[[], None] | None:
        """On the event loop: what matched since the last report, as work for a thread (sign,
        write, push); ``None`` when there is nothing new and nothing left to push."""
        new: list[_New] = []
        with self._lock:
            for iid in sorted(self._dirty):
                times = self._times[iid]
                fresh = len(times) - self._reported.get(iid, 0)
                if fresh > 0:
                    window = times[-fresh:]
                    publisher = self._publisher[iid]
                    new.append(_New(iid, publisher, fresh, min(window), max(window)))
                    self._reported[iid] = len(times)
                    self._reported_until[iid] = self._until.get(iid)
            self._dirty.clear()
        if not new and not (self.unpushed and self.pushing):
            return None
        return functools.partial(self._send, new, now)

    def _undo(self, new: list[_New]) -> None:
        """A report that could not be written: its matches go into the next one."""
        with self._lock:
            for n in new:
                self._reported[n.indicator_id] -= n.count
                self._dirty.add(n.indicator_id)

    def _send(self, new: list[_New], now: float) -> None:
        with self._io:
            if new:
                per: dict[str, list[_New]] = {}
                for n in new:
                    per.setdefault(n.publisher, []).append(n)
                for publisher, group in sorted(per.items()):
                    self._report(publisher, group, now)
                self._save(now)
            if self.pushing and self.unpushed:
                self._push_queued()
                self._save(now)

    def _report(self, publisher: str, new: list[_New], now: float) -> None:
        """Write one publisher's envelope and queue it for its collection, if it has one."""
        try:
            name = self._write(publisher, new, now)
        except IntelError as exc:
            log.error(
                "intel sightings for %s not written (kept for the next report): %s",
                publisher,
                exc,
            )
            self._undo(new)
            return
        log.info(
            "intel: %d sighting(s) of %d new match(es) of %s's indicators → %s",
            len(new),
            sum(n.count for n in new),
            publisher,
            self.folder / name,
        )
        if self.route(publisher) is not None:
            self.unpushed.append(name)
            self.queued_for[name] = publisher
        elif self.pushing and publisher not in self._outbox_only:
            self._outbox_only.add(publisher)
            log.warning(
                "intel: the sightings of %s's indicators stay in the outbox %s (no "
                "`sightings_collections` entry for it and no `sightings_collection`)",
                publisher,
                self.folder,
            )

    def _write(self, publisher: str, new: list[_New], now: float) -> str:
        import stix2

        me = identity_id(self.member)
        when = datetime.fromtimestamp(now, UTC)
        objects = []
        for n in new:
            try:
                objects.append(
                    stix2.v21.Sighting(
                        created=when,
                        modified=when,
                        created_by_ref=me,
                        sighting_of_ref=n.indicator_id,
                        where_sighted_refs=[me],
                        count=min(n.count, 999_999_999),
                        first_seen=datetime.fromtimestamp(n.first, UTC),
                        last_seen=datetime.fromtimestamp(max(n.first, n.last), UTC),
                        description=f"{n.count} more local account(s) matched since the "
                        "last report",
                    )
                )
            except (stix2.exceptions.STIXError, ValueError) as exc:  # a malformed indicator id
                log.warning("intel sighting of %s left out: %s", n.indicator_id, exc)
        if not objects:
            raise IntelError("no valid sighting to write")
        body = json.loads(stix2.v21.Bundle(objects=objects).serialize())
        mark(body["objects"], {n.indicator_id: publisher for n in new})
        envelope = sign(body, self.member, self._key, signed_at=when, expires=when + TTL)
        name = file_name(when, publisher)
        write_json(self.folder / name, envelope)
        return name

    def _push_queued(self) -> None:
        """Push the queue, oldest first; a collection that fails keeps its envelopes queued
        (not tried again this round) and the others go on."""
        from distillwatch.share.taxii_client import ServerRejectedError

        failed: set[int] = set()
        """The pushes that failed this round (``id``: one per collection)."""
        keep: list[str] = []
        for name in self.unpushed:
            publisher = self.queued_for.get(name)
            push = self.route(publisher)
            whose = publisher or "every publisher (an earlier report)"
            if push is None:  # the config changed since it was queued
                log.warning(
                    "intel sightings %s not pushed: no TAXII collection for %s now (kept in "
                    "the outbox)",
                    name,
                    whose,
                )
                self.queued_for.pop(name, None)
                continue
            if id(push) in failed:
                keep.append(name)
                continue
            try:
                envelope = load_envelope(self.folder / name)
            except IntelError as exc:  # removed or damaged in the outbox: nothing to send
                log.warning("intel sightings %s not pushed: %s", name, exc)
                self.queued_for.pop(name, None)
                continue
            try:
                stored = push(envelope)
            except ServerRejectedError as exc:
                if "replayed" in exc.reason:  # an earlier push went through
                    log.info("intel sightings %s were on the TAXII collection already", name)
                else:
                    log.error("intel sightings %s refused by TAXII (not retried): %s", name, exc)
            except IntelError as exc:
                failed.add(id(push))
                keep.append(name)
                log.warning(
                    "intel sightings for %s not pushed (queued, retried at the next report): %s",
                    whose,
                    exc,
                )
                continue
            else:
                log.info("intel sightings %s pushed to TAXII (%d object(s))", name, stored)
            self.queued_for.pop(name, None)
        self.unpushed = keep

    def _save(self, now: float) -> None:
        """The reported counts (an indicator long expired is dropped) and the push queue."""
        horizon = now - KEEP_AFTER_EXPIRY.total_seconds()
        with self._lock:
            reported = {
                iid: {
                    "count": n,
                    "until": None if u is None else datetime.fromtimestamp(u, UTC).isoformat(),
                }
                for iid, n in sorted(self._reported.items())
                if n > 0 and ((u := self._reported_until.get(iid)) is None or u > horizon)
            }
        body = {
            "format": STATE_FORMAT,
            "reported": reported,
            "unpushed": list(self.unpushed),
            "publishers": {n: self.queued_for[n] for n in self.unpushed if n in self.queued_for},
        }
        try:
            write_json(self.state, body)
        except IntelError as exc:
            log.error("intel sightings state not saved: %s", exc)


State = tuple[dict[str, tuple[int, float | None]], list[str], dict[str, str]]
"""What a state file holds: reported counts, the push queue, each queued file's publisher."""


def _read_state(path: Path) -> State:
    if not path.exists():
        return {}, [], {}
    bad = IntelError(f"{path}: not a sightings state file (remove it to start afresh)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise bad from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise bad
    reported: dict[str, tuple[int, float | None]] = {}
    try:
        for iid, row in dict(data.get("reported") or {}).items():
            until = row.get("until")
            when = None if until is None else datetime.fromisoformat(str(until)).timestamp()
            reported[str(iid)] = (int(row["count"]), when)
        unpushed = [str(n) for n in data.get("unpushed") or []]
        publishers = {  # absent before reports were split per publisher
            str(n): p for n, p in dict(data.get("publishers") or {}).items()
        }
    except (TypeError, ValueError, KeyError, AttributeError):
        raise bad from None
    if any("/" in n or "\\" in n or n.startswith(".") for n in unpushed):
        raise bad
    if any(not isinstance(p, str) or not p for p in publishers.values()):
        raise bad
    return reported, unpushed, publishers
