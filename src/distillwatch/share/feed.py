"""Received intel for a running engine: a folder of signed bundles, re-read while it runs.

The gateway's ``intel`` section names a folder that ``intel pull`` (from a cron job, say) or
an operator drops signed envelopes into. ``BundleFolder.attach`` plugs an ``IntelMatcher`` into
the live engine (with the trust policy's ceiling, as ``scan --intel`` does); ``prepare`` runs
off the event loop (a thread): it reads the files not seen before, verifies them
(``files.receive``: a rejected one is logged with its reason and never retried) and, when
something new was accepted, builds a new index of every bundle accepted so far. What it
returns is run on the event loop: a swap of the matcher's index (``IntelMatcher.use_index``),
so look-ups never see an index half built. Indicators revoked by a newer bundle, or expired,
stop matching.
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
from distillwatch.share.files import read_group_secret, receive
from distillwatch.share.index import IntelIndex
from distillwatch.share.match import IntelMatcher
from distillwatch.share.trust import TrustPolicy, load_members

log = logging.getLogger("distillwatch.share")


class BundleFolder:
    """Signed bundles in ``folder`` (``*.json``), verified and indexed as they appear."""

    def __init__(
        self,
        folder: Path,
        policy: TrustPolicy,
        group_secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
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
    def open(cls, folder: Path, *, members: Path, group_secret: Path) -> BundleFolder:
        """From the config's paths; ``IntelError`` when a file is unusable."""
        if not folder.is_dir():
            raise IntelError(f"intel bundles folder {folder} does not exist")
        return cls(folder, load_members(members), read_group_secret(group_secret))

    def attach(self, engine: Engine) -> None:
        """Match the engine's exchanges and accounts, with the ceiling applied."""
        self.matcher.accounts = engine.accounts
        self.matcher.attach(engine, ceiling=True)

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
