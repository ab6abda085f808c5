"""The ``EventStore`` interface and the SQL machinery both backends share.

A backend supplies only what differs: column types, a few read expressions, the parameter
placeholder, how to bulk-load rows into a table and how to stream a query in batches.
Everything else (schema, row encoding, upserts, queries, error wrapping) lives here.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

from distillwatch.errors import StoreError
from distillwatch.records import Account, Exchange, Verdict

Row = tuple[Any, ...]
T = TypeVar("T", bound=msgspec.Struct)


class EventStore(Protocol):
    """Where exchanges, accounts and verdicts are kept between runs.

    ``append_exchanges`` inserts a batch in one transaction, ignoring ids already stored, and
    returns the rows newly inserted; ``put_accounts``/``put_verdicts`` upsert by
    ``account_id``; ``iter_exchanges`` streams in (ts, id) order, ``since`` inclusive,
    ``until`` exclusive, in lists of at most ``batch_size``.
    """

    def append_exchanges(self, batch: Sequence[Exchange]) -> int: ...

    def put_accounts(self, accounts: Sequence[Account]) -> None: ...

    def put_verdicts(self, verdicts: Sequence[Verdict]) -> None: ...

    def iter_exchanges(
        self,
        *,
        batch_size: int = 8192,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[list[Exchange]]: ...

    def count_exchanges(self) -> int: ...

    def accounts(self) -> dict[str, Account]: ...

    def verdicts(self) -> list[Verdict]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


@dataclass(frozen=True)
class Column:
    """``kind``: text, json, ts, int8, int4, float8 or bool; ``required``: NOT NULL."""

    name: str
    kind: str
    required: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    key: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse ``"name:kind[!], ..."`` (``!`` marks NOT NULL)."""
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        out.append(Column(name, kind.rstrip("!"), kind.endswith("!")))
    return tuple(out)


EXCHANGES = Table(
    "exchanges",
    "id",
    _cols(
        "id:text! ts:ts! account_id:text! api_key_id:text ip:text! user_agent:text model:text! "
        "endpoint:text request:json response_text:text prompt_tokens:int8 "
        "completion_tokens:int8 reasoning_tokens:int8 status:int4 latency_ms:float8"
    ),
)
ACCOUNTS = Table(
    "accounts",
    "account_id",
    _cols(
        "account_id:text! created_at:ts org_id:text email_domain:text "
        "payment_fingerprint:text country:text tier:text verified:bool"
    ),
)
VERDICTS = Table(
    "verdicts",
    "account_id",
    _cols("account_id:text! score:float8! action:text! first_action_ts:ts verdict_json:text!"),
)
TABLES = (EXCHANGES, ACCOUNTS, VERDICTS)


_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode
_decode_verdict = msgspec.json.Decoder(Verdict).decode


def as_utc(value: datetime) -> datetime:
    """The same instant with ``tzinfo=UTC``; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


_ENCODERS: dict[str, Callable[[Any], Any]] = {"json": lambda v: _encode_json(v).decode()}
_DECODERS: dict[str, Callable[[Any], Any]] = {"json": _decode_json, "ts": as_utc}


def to_row(table: Table, record: msgspec.Struct) -> Row:
    """The column values of a record whose fields are named like ``table``'s columns."""
    values = []
    for c in table.columns:
        v = getattr(record, c.name)
        enc = _ENCODERS.get(c.kind)
        values.append(enc(v) if enc is not None and v is not None else v)
    return tuple(values)


def verdict_row(v: Verdict) -> Row:
    if v.first_action_ts is not None:
        v = msgspec.structs.replace(v, first_action_ts=as_utc(v.first_action_ts))
    return (v.account_id, v.score, v.action.value, v.first_action_ts, _encode_json(v).decode())


def from_rows(table: Table, rows: Iterable[Row], type_: type[T]) -> list[T]:
    """Decode rows selected with ``table``'s column list into validated records."""
    fixes = [(i, _DECODERS[c.kind]) for i, c in enumerate(table.columns) if c.kind in _DECODERS]
    records = []
    for row in rows:
        values = list(row)
        for i, dec in fixes:
            if values[i] is not None:
                values[i] = dec(values[i])
        records.append(msgspec.convert(dict(zip(table.names, values, strict=True)), type_))
    return records


def dedupe(records: Iterable[T], key: str, *, keep_last: bool) -> list[T]:
    """One record per key, in first-seen order; the first or the last occurrence wins."""
    seen: dict[Any, T] = {}
    for r in records:
        k = getattr(r, key)
        if keep_last or k not in seen:
            seen[k] = r
    return list(seen.values())


def one_line(error: BaseException) -> str:
    """``str(error)`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(error).split()) or type(error).__name__


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return re.sub(r":[^:@/]*@", ":***@", url)


class SqlStore(ABC):
    """``EventStore`` over a SQL connection; subclasses fill in the backend hooks."""

    backend: ClassVar[str]
    types: ClassVar[Mapping[str, str]]  # column kind -> SQL type
    read_exprs: ClassVar[Mapping[str, str]] = {}  # column kind -> select template on {c}
    param: ClassVar[str]  # placeholder for one query parameter
    errors: tuple[type[BaseException], ...]  # the driver's exceptions, set by subclasses

    # backend hooks

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; return its rows (empty for statements without any)."""

    @abstractmethod
    def _load(self, table: Table, rows: list[Row], on_conflict: str) -> int:
        """``INSERT INTO table SELECT <rows> <on_conflict>`` in one transaction; rows inserted."""

    @abstractmethod
    def _stream(
        self, sql: str, params: Sequence[Any], batch_size: int
    ) -> Generator[list[Row], None, None]:
        """Yield the rows of a query in batches of at most ``batch_size``."""

    @abstractmethod
    def close(self) -> None: ...

    # shared SQL

    def schema_sql(self) -> list[str]:
        """``CREATE TABLE IF NOT EXISTS`` for every table."""
        stmts = []
        for t in TABLES:
            cols = ", ".join(
                f"{c.name} {self.types[c.kind]}"
                + (" PRIMARY KEY" if c.name == t.key else " NOT NULL" if c.required else "")
                for c in t.columns
            )
            stmts.append(f"CREATE TABLE IF NOT EXISTS {t.name} ({cols})")
        return stmts

    def select_list(self, table: Table) -> str:
        return ", ".join(self.read_exprs.get(c.kind, "{c}").format(c=c.name) for c in table.columns)

    @staticmethod
    def upsert_clause(table: Table) -> str:
        sets = ", ".join(f"{n} = EXCLUDED.{n}" for n in table.names if n != table.key)
        return f"ON CONFLICT ({table.key}) DO UPDATE SET {sets}"

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn driver and decoding errors into a one-line ``StoreError``."""
        caught: tuple[type[BaseException], ...] = (
            *self.errors,
            msgspec.ValidationError,
            msgspec.DecodeError,
        )
        try:
            yield
        except caught as e:
            raise StoreError(f"{self.backend}: cannot {action}: {one_line(e)}") from e

    # EventStore

    def append_exchanges(self, batch: Sequence[Exchange]) -> int:
        rows = [to_row(EXCHANGES, e) for e in dedupe(batch, "id", keep_last=False)]
        if not rows:
            return 0
        with self._guard("append exchanges"):
            return self._load(EXCHANGES, rows, "ON CONFLICT DO NOTHING")

    def put_accounts(self, accounts: Sequence[Account]) -> None:
        rows = [to_row(ACCOUNTS, a) for a in dedupe(accounts, "account_id", keep_last=True)]
        if rows:
            with self._guard("store accounts"):
                self._load(ACCOUNTS, rows, self.upsert_clause(ACCOUNTS))

    def put_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        rows = [verdict_row(v) for v in dedupe(verdicts, "account_id", keep_last=True)]
        if rows:
            with self._guard("store verdicts"):
                self._load(VERDICTS, rows, self.upsert_clause(VERDICTS))

    def iter_exchanges(
        self,
        *,
        batch_size: int = 8192,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[list[Exchange]]:
        if batch_size < 1:
            raise StoreError(f"batch_size must be at least 1, got {batch_size}")
        where, params = [], []
        for op, bound in ((">=", since), ("<", until)):
            if bound is not None:
                if bound.tzinfo is None:
                    raise StoreError(f"since/until must be timezone-aware, got {bound}")
                where.append(f"ts {op} {self.param}")
                params.append(bound)
        sql = f"SELECT {self.select_list(EXCHANGES)} FROM exchanges"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._iter(sql + " ORDER BY ts, id", params, batch_size)

    def _iter(self, sql: str, params: list[Any], batch_size: int) -> Iterator[list[Exchange]]:
        # Arguments are checked at call time (above); the query starts at the first next().
        chunks = self._stream(sql, params, batch_size)
        try:
            while True:
                with self._guard("read exchanges"):
                    rows = next(chunks, None)
                    if rows is None:
                        return
                    batch = from_rows(EXCHANGES, rows, Exchange)
                yield batch
        finally:
            chunks.close()

    def count_exchanges(self) -> int:
        with self._guard("count exchanges"):
            return int(self._query("SELECT count(*) FROM exchanges")[0][0])

    def accounts(self) -> dict[str, Account]:
        sql = f"SELECT {self.select_list(ACCOUNTS)} FROM accounts ORDER BY account_id"
        with self._guard("read accounts"):
            return {a.account_id: a for a in from_rows(ACCOUNTS, self._query(sql), Account)}

    def verdicts(self) -> list[Verdict]:
        with self._guard("read verdicts"):
            rows = self._query("SELECT verdict_json FROM verdicts ORDER BY account_id")
            return [_decode_verdict(r[0]) for r in rows]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
