"""Received intel in the gateway: what the engine's intel source must do, and its refresh.

The gateway cannot import ``distillwatch.share`` (a later stage), so ``distillwatch serve``
builds the source (``share.feed.BundleFolder``, from the config's ``intel`` section) and
hands it to ``create_app``. The app attaches it to the engine before the log is restored,
installs what it has before the first request, and every ``intel.refresh_s`` runs
``prepare`` in a thread (reading and verifying files, building an index) and what it returns
on the event loop (a swap): nothing of it runs on a request's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from distillwatch.detect import Engine

log = logging.getLogger("distillwatch.gateway")


class IntelFeed(Protocol):
    """A source of received intel for the live engine."""

    def attach(self, engine: Engine) -> None:
        """Become one of the engine's linkers (before it observes anything)."""

    def prepare(self) -> Callable[[], None] | None:
        """Thread-safe work off the event loop; returns what to run on it, or ``None``
        when nothing changed."""


async def refresh(feed: IntelFeed) -> bool:
    """Look for new intel once; whether any was installed."""
    install = await asyncio.to_thread(feed.prepare)
    if install is None:
        return False
    install()
    return True


async def refresh_forever(feed: IntelFeed, every_s: float) -> None:
    """``refresh`` every ``every_s`` seconds; a failure keeps the intel there was."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await refresh(feed)
        except Exception:  # a broken bundle folder must not take the gateway down
            log.exception("intel refresh failed; keeping the intel loaded before")
