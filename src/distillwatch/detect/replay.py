"""The replay driver: a log, in time order, through the engine, to one verdict per account."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from distillwatch.detect.engine import Engine
from distillwatch.log.ordering import OutOfOrderError, external_sort, reorder
from distillwatch.records import Exchange, Verdict

DEFAULT_LATENESS = 300.0
"""Seconds of disorder the in-memory reorder buffer absorbs (gateway replicas interleaving)."""


@dataclass
class ReplayResult:
    engine: Engine
    verdicts: list[Verdict]
    exchanges: int
    seconds: float
    sorted_externally: bool


def replay(
    open_batches: Callable[[], Iterable[list[Exchange]]],
    new_engine: Callable[[], Engine],
    *,
    lateness: float = DEFAULT_LATENESS,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay the exchanges that ``open_batches()`` yields, strictly in ``(ts, id)`` order.

    Logs that are in order, or out of order by less than ``lateness`` seconds, stream
    through once. A record later than that aborts the pass (nothing has been written yet)
    and the log is read again through an out-of-core sort, so no exchange is ever replayed
    out of order and memory stays bounded either way.
    """
    start = time.perf_counter()
    engine = new_engine()
    externally = False
    try:
        _run(engine, reorder(open_batches(), lateness), on_progress)
    except OutOfOrderError:
        externally = True
        engine = new_engine()
        _run(engine, external_sort(open_batches()), on_progress, restart=True)
    verdicts = list(engine.verdicts())
    return ReplayResult(
        engine=engine,
        verdicts=verdicts,
        exchanges=engine.observed,
        seconds=time.perf_counter() - start,
        sorted_externally=externally,
    )


def _run(
    engine: Engine,
    batches: Iterable[list[Exchange]],
    on_progress: Callable[[int], None] | None,
    restart: bool = False,
) -> None:
    if on_progress is not None and restart:
        on_progress(-1)  # tell the progress display that counting starts again
    for batch in batches:
        engine.observe_batch(batch)
        if on_progress is not None:
            on_progress(len(batch))
