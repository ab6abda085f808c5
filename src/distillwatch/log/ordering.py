"""Put exchanges in time order before replay — never replay out of order.

Logs from several gateway replicas interleave: records arrive a little out of order.
``reorder`` fixes that in memory with a buffer of ``lateness`` seconds and raises
``OutOfOrderError`` when a record is later than that; ``external_sort`` then orders the whole
log out of core (DuckDB spills sorted runs to disk under a memory limit).
The order is ``(ts, id)`` everywhere, so a replay does not depend on how replicas interleaved.
"""

from __future__ import annotations

import tempfile
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa

from distillwatch.errors import DistillwatchError
from distillwatch.records import Exchange


class OutOfOrderError(DistillwatchError):
    """A record arrived later than the reorder buffer allows."""

    def __init__(self, exchange_id: str, ts: datetime, watermark: datetime) -> None:
        self.exchange_id = exchange_id
        super().__init__(
            f"exchange {exchange_id} at {ts.isoformat()} arrived after "
            f"{watermark.isoformat()} had been replayed"
        )


def _key(e: Exchange) -> tuple[datetime, str]:
    return (e.ts, e.id)


def reorder(batches: Iterable[list[Exchange]], lateness: float) -> Iterator[list[Exchange]]:
    """Yield the exchanges in ``(ts, id)`` order, holding back the last ``lateness`` seconds."""
    delay = timedelta(seconds=lateness)
    buffer: list[Exchange] = []
    emitted: tuple[datetime, str] | None = None
    for batch in batches:
        if emitted is not None:
            for e in batch:
                if _key(e) < emitted:
                    raise OutOfOrderError(e.id, e.ts, emitted[0])
        buffer.extend(batch)
        buffer.sort(key=_key)  # linear on already-sorted runs (timsort)
        watermark = buffer[-1].ts - delay
        cut = bisect_right(buffer, watermark, key=lambda e: e.ts)
        if cut:
            out, buffer = buffer[:cut], buffer[cut:]
            emitted = _key(out[-1])
            yield out
    if buffer:
        yield buffer


def external_sort(
    batches: Iterable[list[Exchange]],
    *,
    batch_size: int = 8192,
    memory_limit: str = "1GB",
    tmp_dir: Path | None = None,
) -> Iterator[list[Exchange]]:
    """Sort any number of exchanges by ``(ts, id)`` using bounded memory.

    Records are stored as msgpack blobs in a temporary DuckDB database and read back
    ordered; DuckDB's sort spills to ``tmp_dir`` when the data outgrow ``memory_limit``.
    """
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(Exchange)
    with tempfile.TemporaryDirectory(prefix="distillwatch-sort-", dir=tmp_dir) as tmp:
        con = duckdb.connect(str(Path(tmp) / "sort.duckdb"))
        try:
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute(f"SET temp_directory = '{tmp}'")
            con.execute("SET preserve_insertion_order = false")
            con.execute("CREATE TABLE x (ts TIMESTAMPTZ, id VARCHAR, rec BLOB)")
            for batch in batches:
                chunk = pa.table(
                    {
                        "ts": pa.array([e.ts for e in batch], pa.timestamp("us", tz="UTC")),
                        "id": pa.array([e.id for e in batch], pa.string()),
                        "rec": pa.array([encoder.encode(e) for e in batch], pa.binary()),
                    }
                )
                con.register("chunk", chunk)
                con.execute("INSERT INTO x SELECT * FROM chunk")
                con.unregister("chunk")
            cur = con.execute("SELECT rec FROM x ORDER BY ts, id")
            while rows := cur.fetchmany(batch_size):
                yield [decoder.decode(r[0]) for r in rows]
        finally:
            con.close()
