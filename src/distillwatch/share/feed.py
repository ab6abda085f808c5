"""Received intel for a running engine: a folder of signed bundles, re-read while it runs;
optionally filled from a TAXII collection, and sightings sent back.

The gateway's ``intel`` section names a folder that ``intel pull`` (from a cron job, say),
an operator or the feed's own TAXII pull (``TaxiiPull``: ``pull``, in a thread) drops signed
envelopes into. A pulled envelope is only written to the folder: it is verified where every
other one is, by ``prepare`` (the server's own verification is not trusted), and the folder
is what a restart reads again (the last ``date_added`` pulled is kept in
``<folder>/.taxii-state.json``, so a restart does not download everything again).
``BundleFolder.attach`` plugs an ``IntelMatcher`` into the live engine (with the trust
policy's ceiling, as ``scan --intel`` does); ``prepare`` runs off the event loop (a
thread): it reads the files not seen before, verifies them (``files.receive``: a rejected
one is logged with its reason and never retried) and, when something new was accepted,
builds a new index of every bundle accepted so far. What it returns is run on the event
loop: a swap of the matcher's index (``IntelMatcher.use_index``), so look-ups never see an
index half built. Indicators revoked by a newer bundle, or expired, stop matching.

With a ``SightingsOutbox`` (``share.sightings``), each new match is counted as it happens and
``report`` (on the event loop) hands the signed sightings of what matched since the last
report to a thread.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distillwatch.detect import Engine
from distillwatch.share.errors import IntelError
from distillwatch.share.files import read_group_secret, receive, write_json
from distillwatch.share.index import IntelIndex
from distillwatch.share.match import IntelMatcher
from distillwatch.share.sightings import SightingsOutbox
from distillwatch.share.taxii_client import TIMEOUT_S, pull, read_state
from distillwatch.share.trust import TrustPolicy, load_members

log = logging.getLogger("distillwatch.share")

TAXII_STATE = ".taxii-state.json"


class TaxiiPull:
    """Envelopes added to a TAXII 2.1 collection, pulled into the bundle folder."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        folder: Path,
        *,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.url = url
        self.user = user
        self._password = password
        self.folder = folder
        self.timeout_s = timeout_s
        self.state = folder / TAXII_STATE
        self.last_added = read_state(self.state)
        """The ``date_added`` of the last envelope pulled (``None``: pull everything)."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the password
        return f"TaxiiPull({self.url!r}, user={self.user!r}, folder={str(self.folder)!r})"

    def pull(self) -> int:
        """Envelopes added since the last pull, written to the folder; how many. The state
        moves on only once they are all written. ``IntelError`` when the server fails."""
        with self._lock:
            got = pull(
                self.url,
                self.user,
                self._password,
                self.folder,
                since=self.last_added,
                timeout_s=self.timeout_s,
            )
            if got.skipped:
                log.warning("intel: %d TAXII object(s) without an envelope skipped", got.skipped)
            if got.last_added and got.last_added != self.last_added:
                write_json(self.state, {"last_added": got.last_added})
                self.last_added = got.last_added
            return len(got.written)


class BundleFolder:
    """Signed bundles in ``folder`` (``*.json``), verified and indexed as they appear."""

    def __init__(
        self,
        folder: Path,
        policy: TrustPolicy,
        group_secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
        taxii: TaxiiPull | None = None,
        outbox: SightingsOutbox | None = None,
    ) -> None:
        self.folder = folder
        self.taxii = taxii
        self.outbox = outbox
        self.policy = policy
        self.group_secret = group_secret
        self.clock = clock
        self.matcher = IntelMatcher(IntelIndex(policy.group, group_secret), policy)
        self.bundles: list[tuple[str, dict[str, Any]]] = []
        """Every bundle accepted so far, with its signer."""
        self.rejected: dict[Path, str] = {}
        self._seen_ids: set[str] = set()
        self._files: dict[Path, tuple[int, int]] = {}
        """Files read: (mtime_ns, size) when read (a changed file is read again)."""
        self._digests: set[bytes] = set()
        """SHA-256 of every file read (the same envelope under a new name is skipped)."""
        self._lock = threading.Lock()  # one ``prepare`` at a time
        self._built = 0
        self._installed = 0

    @classmethod
    def open(
        cls,
        folder: Path,
        *,
        members: Path,
        group_secret: Path,
        taxii: TaxiiPull | None = None,
        outbox: SightingsOutbox | None = None,
    ) -> BundleFolder:
        """From the config's paths; ``IntelError`` when a file is unusable. With ``taxii``
        the folder is created if needed (the pull fills it)."""
        if taxii is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IntelError(f"cannot create {folder}: {exc.strerror or exc}") from None
        if not folder.is_dir():
            raise IntelError(f"intel bundles folder {folder} does not exist")
        policy, secret = load_members(members), read_group_secret(group_secret)
        return cls(folder, policy, secret, taxii=taxii, outbox=outbox)

    def attach(self, engine: Engine) -> None:
        """Match the engine's exchanges and accounts, with the ceiling applied; with an
        outbox, every new match is counted for the next sightings report."""
        self.matcher.accounts = engine.accounts
        self.matcher.attach(engine, ceiling=True)
        if self.outbox is None:
            return
        outbox, matcher, touch = self.outbox, self.matcher, self.matcher.on_change

        def changed(account_id: str) -> None:
            h = matcher.hits.get(account_id)
            if h is not None:
                outbox.saw(account_id, h.refs, h.last)
            if touch is not None:
                touch(account_id)

        matcher.on_change = changed

    def pull(self) -> bool:
        """Off the event loop: new envelopes from the TAXII collection into the folder
        (nothing without one); whether any arrived (``prepare`` verifies them). A failing
        server is logged, and the next call tries again; nothing loaded is dropped."""
        if self.taxii is None:
            return False
        try:
            n = self.taxii.pull()
        except IntelError as exc:
            log.warning("intel: TAXII pull failed, retried at the next pull: %s", exc)
            return False
        if n:
            log.info("intel: %d envelope(s) pulled from TAXII %s", n, self.taxii.url)
        return n > 0

    def report(self) -> Callable[[], None] | None:
        """On the event loop: the sightings of the matches made since the last report, as
        work for a thread (sign, write to the outbox, push); ``None``: nothing to do."""
        if self.outbox is None:
            return None
        return self.outbox.take(self.clock())

    def _new_files(self) -> list[Path]:
        out = []
        for path in sorted(self.folder.glob("*.json")):
            if path.name.startswith("."):  # a file being written (write_json's .tmp-…)
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            mark = (st.st_mtime_ns, st.st_size)
            if self._files.get(path) == mark:
                continue
            self._files[path] = mark
            try:
                digest = hashlib.sha256(path.read_bytes()).digest()
            except OSError as exc:
                log.warning("intel bundle %s unreadable: %s", path, exc.strerror or exc)
                continue
            if digest not in self._digests:
                self._digests.add(digest)
                out.append(path)
        return out

    def prepare(self) -> Callable[[], None] | None:
        """Off the event loop: verify the new files; when any was accepted, a function that
        installs the rebuilt index (run it on the event loop). ``None``: nothing new."""
        with self._lock:
            return self._prepare()

    def _install(self, index: IntelIndex, built: int) -> None:
        if built > self._installed:  # an older rebuild finishing late is dropped
            self._installed = built
            self.matcher.use_index(index)

    def _prepare(self) -> Callable[[], None] | None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        accepted = 0
        for path in self._new_files():
            try:
                got = receive(
                    [path],
                    policy=self.policy,
                    group_secret=self.group_secret,
                    now=now,
                    seen=self._seen_ids,
                )
            except IntelError as exc:  # vanished or unreadable between listing and reading
                log.warning("intel bundle %s skipped: %s", path, exc)
                continue
            for p, reason in got.rejected:
                self.rejected[p] = reason
                log.warning("intel bundle %s rejected: %s", p, reason)
            self.bundles += got.bundles
            accepted += len(got.bundles)
            for member, _ in got.bundles:
                log.info("intel bundle %s accepted from %s", path, member)
        if not accepted:
            return None
        index = IntelIndex(self.policy.group, self.group_secret)
        for member, bundle in self.bundles:
            index.add_bundle(member, bundle, now=now)
        log.info(
            "intel: %d indicator(s) from %d bundle(s) indexed", len(index.refs), len(self.bundles)
        )
        self._built += 1
        built = self._built
        return lambda: self._install(index, built)
