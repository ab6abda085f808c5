"""The Spark driver: ``scan --engine spark`` (the ``[spark]`` extra, PySpark ≥ 4).

The same engine, not a second implementation. Spark reads the log in parallel — one task per
Parquet row-group range or per JSON Lines file, each read and validated by the very readers
``scan`` uses, so a bad record gets the same ``file:line`` error and ``--skip-invalid`` the
same counts — and orders it by ``(ts, id)`` with its own out-of-core sort. The engine then
runs over that one ordered stream inside ``mapInArrow``: population baselines, campaign
attribution and the decisions that feed them are cross-account and causal, so they see
exchanges in global time order, exactly as the embedded replay does. That is what makes the
verdicts and campaigns identical to ``scan``'s, byte for byte (``tests/detect/test_spark.py``).

What is parallel today is reading, decoding, validating and sorting; the causal pass is one
task, whose cost per exchange is the embedded engine's (``docs/deploy.md`` sizes it and says
what sharding it by account needs).

Input paths are opened by the executors: on a cluster they must be on a filesystem every
executor mounts at the same path.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from distillwatch.detect.engine import Engine
from distillwatch.errors import DistillwatchError, LogFormatError
from distillwatch.log import SkipReport, is_parquet, read_exchanges
from distillwatch.log.kinds import EXCHANGES
from distillwatch.log.parquet import decode_batch, read_parquet
from distillwatch.records import Exchange, Verdict

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPLIT_ROWS = 262_144
"""Rows per Parquet read task (whole row groups; a group larger than this is one task)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_FIRST = -(2**63)
"""Sort key of error rows: before every exchange, so the engine task meets them first."""
_RECORDS = "ts long, id string, rec binary, err binary"
_RESULTS = "kind string, body binary"


class SparkUnavailableError(DistillwatchError):
    """PySpark (or its Java runtime) is not there."""


@dataclass(frozen=True)
class Split:
    """One read task: a file, or a consecutive range of a Parquet file's row groups."""

    index: int
    path: str
    row_groups: tuple[int, ...] = ()


@dataclass
class SparkResult:
    """What the engine task sends back (the embedded ``ReplayResult``'s counterpart)."""

    verdicts: list[Verdict]
    extras: list[bytes]
    exchanges: int
    seconds: float
    skips: SkipReport | None = None
    splits: int = 0


def log_files(path: Path) -> list[Path]:
    """A log file, or the log files of a directory (Spark writes part files), sorted by name."""
    if not path.exists():
        raise LogFormatError("no such file", source=path)
    if path.is_file():
        return [path]
    found = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and (is_parquet(p) or p.name.endswith((".jsonl", ".jsonl.gz")))
    )
    if not found:
        raise LogFormatError("no .parquet, .jsonl or .jsonl.gz files in the directory", source=path)
    return found


def plan_splits(files: Sequence[Path], rows: int = SPLIT_ROWS) -> list[Split]:
    """Read tasks: each JSON Lines file whole (gzip is not splittable), Parquet by row groups."""
    splits: list[Split] = []
    for path in files:
        groups = pq.ParquetFile(path).metadata if is_parquet(path) else None
        if groups is None or groups.num_row_groups <= 1:
            splits.append(Split(len(splits), str(path)))
            continue
        current: list[int] = []
        size = 0
        for g in range(groups.num_row_groups):
            current.append(g)
            size += groups.row_group(g).num_rows
            if size >= rows:
                splits.append(Split(len(splits), str(path), tuple(current)))
                current, size = [], 0
        if current:
            splits.append(Split(len(splits), str(path), tuple(current)))
    return splits


def ts_key(ts: datetime) -> int:
    """Microseconds since the epoch: the ``(ts, id)`` order as a Spark long."""
    return (ts - _EPOCH) // _US


class _Pending(SkipReport):
    """A ``SkipReport`` that hands each skipped record on instead of counting it here."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[LogFormatError] = []

    def add(self, error: LogFormatError) -> None:
        self.pending.append(error)


def _error_body(e: LogFormatError, fatal: bool) -> bytes:
    return msgspec.msgpack.encode([fatal, e.reason, e.source, e.line, e.field, e.unit])


def _error_of(body: bytes) -> tuple[bool, LogFormatError]:
    fatal, reason, source, line, fld, unit = msgspec.msgpack.decode(body)
    return bool(fatal), LogFormatError(reason, source=source, line=line, field=fld, unit=unit)


def _error_batch(
    keys: Sequence[str], errors: Sequence[tuple[LogFormatError, bool]]
) -> pa.RecordBatch:
    """Error rows: sorted before every exchange, by ``keys`` (the order they were met in)."""
    return pa.RecordBatch.from_pydict(
        {
            "ts": pa.array([_FIRST] * len(keys), pa.int64()),
            "id": list(keys),
            "rec": pa.array([None] * len(keys), pa.binary()),
            "err": pa.array([_error_body(e, fatal) for e, fatal in errors], pa.binary()),
        }
    )


def _record_batch(exchanges: Sequence[Exchange], encode: Callable[[Any], bytes]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "ts": pa.array([ts_key(e.ts) for e in exchanges], pa.int64()),
            "id": [e.id for e in exchanges],
            "rec": pa.array([encode(e) for e in exchanges], pa.binary()),
            "err": pa.array([None] * len(exchanges), pa.binary()),
        }
    )


def read_split(
    split: Split, skip_invalid: bool, batch_size: int = 8192
) -> Iterator[pa.RecordBatch]:
    """The exchanges of one split as Arrow rows ``(ts, id, rec, err)``; errors as rows too."""
    encode = msgspec.msgpack.Encoder().encode
    pending = _Pending() if skip_invalid else None
    met = 0

    def errors(items: Sequence[tuple[LogFormatError, bool]]) -> pa.RecordBatch:
        nonlocal met
        keys = [f"{split.index:09d}:{met + i:012d}" for i in range(1, len(items) + 1)]
        met += len(items)
        return _error_batch(keys, items)

    path = Path(split.path)
    try:
        if split.row_groups:
            batches = read_parquet(
                path, EXCHANGES, batch_size=batch_size, skips=pending, row_groups=split.row_groups
            )
        else:
            batches = read_exchanges(path, batch_size=batch_size, skips=pending)
        for batch in batches:
            if pending is not None and pending.pending:
                yield errors([(e, False) for e in pending.pending])
                pending.pending.clear()
            yield _record_batch(batch, encode)
    except LogFormatError as e:
        yield errors([(e, True)])
        return
    if pending is not None and pending.pending:
        yield errors([(e, False) for e in pending.pending])


def _decode_table(
    source: str, skip_invalid: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """What ``mapInArrow`` runs over a table's rows: the Parquet reader's validation."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        encode = msgspec.msgpack.Encoder().encode
        pending = _Pending() if skip_invalid else None
        for rb in batches:
            try:
                records = decode_batch(rb, EXCHANGES, source=source, first_row=None, skips=pending)
            except LogFormatError as e:
                yield _error_batch([e.source], [(e, True)])
                return
            if pending is not None and pending.pending:
                keys = [e.source for e in pending.pending]  # names the record's id: a stable order
                yield _error_batch(keys, [(e, False) for e in pending.pending])
                pending.pending.clear()
            yield _record_batch(records, encode)

    return run


def _engine_task(
    new_engine: Callable[[], Engine],
    finish: Callable[[Engine], list[bytes]],
    skip_invalid: bool,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function ``mapInArrow`` runs over the one time-ordered partition."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        decode = msgspec.msgpack.Decoder(Exchange).decode
        encode = msgspec.msgpack.Encoder().encode
        engine = new_engine()
        skips = SkipReport() if skip_invalid else None
        for rb in batches:
            errs = rb.column("err")
            if errs.null_count < len(errs):
                for body in errs.to_pylist():
                    if body is None:
                        continue
                    fatal, error = _error_of(body)
                    if fatal or skips is None:
                        yield _results([("error", body)])
                        return
                    skips.add(error)
                rb = rb.filter(errs.is_null())
            engine.observe_batch([decode(r) for r in rb.column("rec").to_pylist()])
        out: list[tuple[str, bytes]] = [("verdict", encode(v)) for v in engine.verdicts()]
        out.extend(("extra", body) for body in finish(engine))
        out.append(("count", encode(engine.observed)))
        if skips is not None:
            out.append(("skips", encode([skips.total, dict(skips.by_reason), skips.examples])))
        for i in range(0, len(out), 4096):
            yield _results(out[i : i + 4096])

    return run


def _results(rows: Sequence[tuple[str, bytes]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"kind": [k for k, _ in rows], "body": pa.array([b for _, b in rows], pa.binary())}
    )


def spark_session(master: str | None = None, app: str = "distillwatch scan") -> SparkSession:
    """A quiet session: ``master`` (``local[2]``, ``spark://…``, ``yarn``) or, when None, what
    ``spark-submit`` configured, else ``local[*]``."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise SparkUnavailableError(
            "--engine spark needs PySpark: pip install 'distillwatch[spark]' (and Java 17+)"
        ) from e
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    submitted = "SPARK_HOME" in os.environ or "PYSPARK_SUBMIT_ARGS" in os.environ
    master = master or (None if submitted else "local[*]")
    builder = SparkSession.builder.appName(app)
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # the JVM starts here: its logging can still be configured (errors only)
        log4j = Path(__file__).with_name("log4j2.properties").as_uri()
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j}"
        )
    for key, value in {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",  # table timestamps reach the engine in UTC
    }.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as e:  # py4j / JVM start-up failures have no common base class
        raise SparkUnavailableError(f"cannot start Spark: {str(e).splitlines()[0]}") from e
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_replay(
    spark: SparkSession,
    log: Path | str,
    new_engine: Callable[[], Engine],
    *,
    finish: Callable[[Engine], list[bytes]] | None = None,
    skip_invalid: bool = False,
    split_rows: int = SPLIT_ROWS,
) -> SparkResult:
    """Replay ``log`` through ``new_engine()`` on Spark.

    ``log`` is a file or a directory of part files (a ``Path``), or a relation Spark SQL can
    read (a ``str``: ``db.exchanges``, a view, ``parquet.`s3a://bucket/log/```) with the
    spec's columns. ``finish(engine)`` runs in the engine task after the last exchange and
    returns opaque payloads (``scan`` sends its campaigns back this way). Raises the reader's
    ``LogFormatError`` for the first invalid record unless ``skip_invalid``.
    """
    start = time.perf_counter()
    if isinstance(log, Path):
        splits = plan_splits(log_files(log), split_rows)
        records = _records(spark, splits, skip_invalid)
        parts = len(splits)
    else:
        records = _table(spark, log, skip_invalid)
        parts = records.rdd.getNumPartitions()
    ordered = records.repartition(1).sortWithinPartitions("ts", "id")
    task = _engine_task(new_engine, finish or (lambda _: []), skip_invalid)
    rows = ordered.mapInArrow(task, _RESULTS).collect()
    return _collect(rows, parts, time.perf_counter() - start)


def _records(spark: SparkSession, splits: list[Split], skip_invalid: bool) -> DataFrame:
    specs = msgspec.msgpack.encode([[s.index, s.path, list(s.row_groups)] for s in splits])
    table = spark.sparkContext.parallelize(range(len(splits)), len(splits)).map(lambda i: (i,))
    index = table.toDF("split int")

    def read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        plan = [Split(i, p, tuple(g)) for i, p, g in msgspec.msgpack.decode(specs)]
        for rb in batches:
            for i in rb.column("split").to_pylist():
                yield from read_split(plan[i], skip_invalid)

    return index.mapInArrow(read, _RECORDS)


def _table(spark: SparkSession, relation: str, skip_invalid: bool) -> DataFrame:
    source = f"table {relation}"
    try:
        frame = spark.sql(f"SELECT * FROM {relation}")
    except Exception as e:  # AnalysisException and parse errors share no useful base class
        raise LogFormatError(f"cannot read ({str(e).splitlines()[0]})", source=source) from e
    names = set(frame.columns)
    for name in sorted(EXCHANGES.required - names):
        raise LogFormatError("required column missing", source=source, field=name)
    columns = [f.name for f in EXCHANGES.schema if f.name in names]
    return frame.select(*columns).mapInArrow(_decode_table(source, skip_invalid), _RECORDS)


def _collect(rows: Sequence[Any], splits: int, seconds: float) -> SparkResult:
    verdict = msgspec.msgpack.Decoder(Verdict).decode
    verdicts: list[Verdict] = []
    extras: list[bytes] = []
    exchanges = 0
    skips: SkipReport | None = None
    for row in rows:
        kind, body = row["kind"], bytes(row["body"])
        if kind == "error":
            raise _error_of(body)[1]
        if kind == "verdict":
            verdicts.append(verdict(body))
        elif kind == "extra":
            extras.append(body)
        elif kind == "count":
            exchanges = msgspec.msgpack.decode(body)
        elif kind == "skips":
            total, by_reason, examples = msgspec.msgpack.decode(body)
            skips = SkipReport(total=total, examples=examples)
            skips.by_reason.update(by_reason)
    return SparkResult(verdicts, extras, exchanges, seconds, skips=skips, splits=splits)
