"""Rebuild the engine's state from the gateway's own log when it starts.

Without this, a restart would forget every account's history and decisions: a blocked
account would get a fresh start. The log (JSONL segments, or the event store) is replayed in
``(ts, id)`` order through the engine before the first request is served, exactly as
``scan`` would replay it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from distillwatch.detect import Engine
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.durable_log import segments
from distillwatch.log import read_exchanges
from distillwatch.log.ordering import external_sort
from distillwatch.records import Exchange
from distillwatch.store import EventStore

log = logging.getLogger("distillwatch.gateway")


def _segment_batches(config: GatewayConfig) -> Iterator[list[Exchange]]:
    for path in segments(config.log.dir):
        if path.stat().st_size:
            yield from read_exchanges(path)


def restore_engine(engine: Engine, config: GatewayConfig, store: EventStore | None = None) -> int:
    """Replay the logged exchanges (from ``store`` when the log is one) into ``engine`` in
    time order; return how many."""
    started = time.perf_counter()
    n = 0
    if store is not None:
        for batch in store.iter_exchanges():
            engine.observe_batch(batch)
            n += len(batch)
    elif config.log.dir.exists():
        for batch in external_sort(_segment_batches(config)):
            engine.observe_batch(batch)
            n += len(batch)
    if n:
        log.info(
            "engine restored from %d logged exchanges in %.1f s", n, time.perf_counter() - started
        )
    return n
