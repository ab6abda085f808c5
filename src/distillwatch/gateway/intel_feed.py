"""Received intel in the gateway: what the engine's intel source must do, and its schedule.

The gateway cannot import ``distillwatch.share`` (a later stage), so ``distillwatch serve``
builds the source (``share.feed.BundleFolder``, from the config's ``intel`` section) and
hands it to ``create_app``. The app attaches it to the engine before the log is restored,
installs what it has before the first request, and then runs three loops, none of which
puts anything on a request's path:

* every ``intel.refresh_s``, ``prepare`` in a thread (reading and verifying files, building
  an index) and what it returns on the event loop (a swap);
* with ``intel.taxii``, at start-up and every ``pull_s``, ``pull`` in a thread (new envelopes
  from the TAXII collection into the folder), then a refresh when something arrived;
* with ``intel.member`` (sightings), every ``sightings_every_s``, ``report`` on the event loop
  (it takes the matches made since the last report: a few dictionary operations) and the
  work it returns in a thread (sign, write to the outbox, push).

A failure in any of them is logged and the loop goes on with the intel it had.
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

    def pull(self) -> bool:
        """Thread-safe work off the event loop: fetch new intel from a remote source (none:
        ``False``); whether anything arrived for ``prepare``. Never raises for a failing
        source (it logs it)."""

    def report(self) -> Callable[[], None] | None:
        """On the event loop, quick: take what matched since the last report; returns the
        work that sends it back (run in a thread), or ``None`` when there is nothing."""


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


async def pull(feed: IntelFeed) -> bool:
    """Pull from the feed's remote source once and install what arrived; whether any was."""
    if not await asyncio.to_thread(feed.pull):
        return False
    return await refresh(feed)


async def pull_forever(feed: IntelFeed, every_s: float) -> None:
    """``pull`` now and then every ``every_s`` seconds; a failure is retried next time."""
    while True:
        try:
            await pull(feed)
        except Exception:  # a failing TAXII server must not take the gateway down
            log.exception("intel pull failed; keeping the intel loaded before")
        await asyncio.sleep(every_s)


async def report(feed: IntelFeed) -> bool:
    """Send back what matched since the last report; whether there was anything to do."""
    work = feed.report()
    if work is None:
        return False
    await asyncio.to_thread(work)
    return True


async def report_forever(feed: IntelFeed, every_s: float) -> None:
    """``report`` every ``every_s`` seconds; a failure is retried at the next report."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await report(feed)
        except Exception:
            log.exception("intel sightings report failed")
