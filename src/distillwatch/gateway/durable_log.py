"""Durable exchange logging with group commit.

Requests hand their finished exchange to :class:`GroupCommitLog` and wait; one committer
task writes everything that queued up meanwhile in a single batch and makes it durable
(one ``fsync`` per batch), then releases every waiter. A client's response is completed
only after that, so a crash (``kill -9``) never loses an exchange the client saw.

Sinks: :class:`SegmentSink` (embedded default: append-only JSON Lines segments in the
exchange-log format, ``exchanges-<start>-<pid>-<n>.jsonl``) and :class:`StoreSink` (any
``EventStore``; DuckDB and PostgreSQL commit durably).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from distillwatch.errors import DistillwatchError, StoreError
from distillwatch.log import read_exchanges
from distillwatch.records import Exchange
from distillwatch.store import EventStore

SEGMENT_GLOB = "exchanges-*.jsonl"


class LogWriteError(DistillwatchError):
    """An exchange could not be made durable."""


class Sink(Protocol):
    """Somewhere batches of exchanges become durable; ``write_batch`` returns once they are."""

    def write_batch(self, batch: list[Exchange]) -> None: ...

    def close(self) -> None: ...


class SegmentSink:
    """Append-only JSONL segments in ``folder``, fsynced per batch, rolled by size.

    Each process writes segments of its own and holds an exclusive ``flock`` on the one it
    is writing; at start, segments nobody holds are repaired (a torn last line, left by a
    crash in the middle of a write, is cut off) so every segment stays valid JSON Lines.
    """

    def __init__(self, folder: Path, *, segment_bytes: int = 64 << 20, fsync: bool = True) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        # without fsync a batch is one write(2) into the page cache: cheaper done inline by
        # the committer than handed to a thread and back
        self.inline = not fsync
        self._encode = msgspec.json.Encoder().encode
        self._seq = 0
        self._fd = -1
        self._size = 0
        try:
            folder.mkdir(parents=True, exist_ok=True)
            repair_segments(folder)
            self._roll()
        except OSError as e:
            raise LogWriteError(f"cannot open exchange log in {folder}: {e}") from e

    def _roll(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        while True:
            self._seq += 1
            self.path = self.folder / f"exchanges-{stamp}-{os.getpid()}-{self._seq:04d}.jsonl"
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
                break
            except FileExistsError:
                continue
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self._size = fd, 0
        if self.fsync:  # the new name itself must survive a crash
            dfd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def write_batch(self, batch: list[Exchange]) -> None:
        data = b"".join(self._encode(e) + b"\n" for e in batch)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fdatasync(self._fd)
            self._size += len(data)
            if self._size >= self.segment_bytes:
                self._roll()
        except OSError as e:
            raise LogWriteError(f"cannot write exchange log {self.path}: {e}") from e

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def repair_segments(folder: Path) -> int:
    """Cut a torn last line off every segment no live process holds; return how many."""
    repaired = 0
    for path in sorted(folder.glob(SEGMENT_GLOB)):
        fd = os.open(path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another gateway is writing it
            size = os.fstat(fd).st_size
            if size == 0:
                continue
            keep = _last_newline_end(fd, size)
            if keep != size:
                os.ftruncate(fd, keep)
                os.fsync(fd)
                repaired += 1
        finally:
            os.close(fd)
    return repaired


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just past the last ``\\n`` in the file (0 if it has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def segments(folder: Path) -> list[Path]:
    """The segments of a log folder, oldest first."""
    return sorted(folder.glob(SEGMENT_GLOB))


def read_segments(folder: Path) -> Iterator[Exchange]:
    """Every exchange in a log folder, segment by segment (empty segments skipped)."""
    for path in segments(folder):
        if path.stat().st_size:
            for batch in read_exchanges(path):
                yield from batch


class StoreSink:
    """Batches appended to an ``EventStore`` (one transaction each)."""

    inline = False

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def write_batch(self, batch: list[Exchange]) -> None:
        try:
            self.store.append_exchanges(batch)
        except StoreError as e:
            raise LogWriteError(str(e)) from e

    def close(self) -> None:
        self.store.close()


class GroupCommitLog:
    """``await log.append(exchange)`` returns once the exchange is durable.

    One committer task drains everything queued (up to ``batch_max`` at a time) into one
    ``write_batch`` call in a worker thread (or inline, for a sink whose ``inline`` says its
    writes never wait for the disk); requests arriving meanwhile form the next batch, so
    durability costs one fsync per batch, not per request.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        batch_max: int = 1024,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        self.sink = sink
        self.inline = bool(getattr(sink, "inline", False))
        self.batch_max = batch_max
        self.on_commit = on_commit
        self._pending: list[tuple[Exchange, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.written = 0

    @property
    def depth(self) -> int:
        """Exchanges waiting to be committed."""
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="distillwatch-log-committer")

    async def append(self, exchange: Exchange) -> None:
        """Queue ``exchange`` and wait until it is durable; ``LogWriteError`` if it cannot be."""
        if self._task is None or self._task.done():
            raise LogWriteError("the exchange log is not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((exchange, fut))
        self._wake.set()
        await fut

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            await self._drain()
        await self._drain()

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.batch_max]
            del self._pending[: self.batch_max]
            started = time.perf_counter()
            try:
                if self.inline:
                    self.sink.write_batch([e for e, _ in batch])
                else:
                    await asyncio.to_thread(self.sink.write_batch, [e for e, _ in batch])
            except Exception as e:
                error = e if isinstance(e, LogWriteError) else LogWriteError(str(e))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                        fut.exception()  # retrieved here too, in case its waiter has gone
                continue
            self.batches += 1
            self.written += len(batch)
            if self.on_commit is not None:
                self.on_commit(len(batch), time.perf_counter() - started)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def close(self) -> None:
        """Commit what is queued, stop the committer, close the sink."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        self.sink.close()
