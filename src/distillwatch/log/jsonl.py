"""JSON Lines (plain or gzip) readers and writers, streamed in batches."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from io import BufferedIOBase
from pathlib import Path
from typing import Any

import msgspec

from distillwatch.errors import LogFormatError
from distillwatch.log.checks import check_record, valid_ip
from distillwatch.log.errors_text import split_validation_message
from distillwatch.log.kinds import RecordKind
from distillwatch.log.skips import SkipReport
from distillwatch.records import Exchange

_GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_binary(path: Path) -> BufferedIOBase:
    """Open for reading, decompressing gzip whatever the file is called."""
    if is_gzip(path):
        return gzip.open(path, "rb")
    return path.open("rb")


CHUNK = 1 << 20
"""Bytes read (decompressed) at a time: lines are split from whole chunks, not read one by
one through the file object (``GzipFile.readline`` costs more than decoding a short line)."""


def _lines(f: BufferedIOBase) -> Iterator[list[bytes]]:
    """The file's lines (each with its ``\n``, the last one maybe without), chunk by chunk.

    Exactly the lines ``for line in f`` gives, in order; a read error (a truncated gzip
    stream) propagates after every complete line before it was yielded, as it does there.
    """
    read = getattr(f, "read1", f.read)
    pending = b""
    while True:
        data = read(CHUNK)
        if not data:
            break
        if pending:
            data = pending + data
        cut = data.rfind(b"\n") + 1
        if not cut:
            pending = data
            continue
        pending = data[cut:]
        lines = data[:cut].split(b"\n")
        lines.pop()  # the empty piece after the last newline
        yield [line + b"\n" for line in lines]
    if pending:
        yield [pending]


def read_jsonl(
    path: Path,
    kind: RecordKind,
    *,
    batch_size: int,
    skips: SkipReport | None,
) -> Iterator[list[Any]]:
    """Yield validated records in file order, ``batch_size`` at a time.

    Raises ``LogFormatError`` naming ``file:line`` and the field on the first invalid line,
    unless ``skips`` is given, in which case invalid lines are counted there instead.
    """
    decode = msgspec.json.Decoder(kind.type).decode
    exchanges = kind.type is Exchange  # what ``check_record`` checks: the address
    batch: list[Any] = []
    append = batch.append
    lineno = 0
    seen = 0
    try:
        with open_binary(path) as f:
            for lines in _lines(f):
                for line in lines:
                    lineno += 1
                    if line[0] != 123 and not line.strip():  # 123: "{", the usual start
                        continue
                    seen += 1
                    try:
                        record: Any = decode(line)
                        if not exchanges or not valid_ip(record.ip):  # the check, cached
                            check_record(kind, record)
                    except (msgspec.ValidationError, msgspec.DecodeError, LogFormatError) as e:
                        error = _line_error(path, lineno, e)
                        if skips is None:
                            raise error from e
                        skips.add(error)
                        continue
                    append(record)
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
                        append = batch.append
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise LogFormatError(
            f"truncated or corrupt gzip stream after line {lineno}", source=path, line=lineno + 1
        ) from e
    except UnicodeDecodeError as e:  # pragma: no cover - msgspec reports most encoding errors
        raise LogFormatError("not UTF-8 text", source=path, line=lineno) from e
    if not seen:
        raise LogFormatError(f"empty file: no {kind.name} records", source=path)
    if batch:
        yield batch


def _line_error(path: Path, lineno: int, e: Exception) -> LogFormatError:
    if isinstance(e, LogFormatError):
        return LogFormatError(e.reason, source=path, line=lineno, field=e.field)
    if not isinstance(e, msgspec.ValidationError):  # ValidationError subclasses DecodeError
        return LogFormatError(f"malformed JSON ({e})", source=path, line=lineno)
    field, reason = split_validation_message(str(e))
    return LogFormatError(reason, source=path, line=lineno, field=field)


def _open_for_writing(path: Path) -> BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=5)
    return path.open("wb")


class JsonlWriter:
    """Write records as JSON Lines; gzip when the name ends in ``.gz``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._encoder = msgspec.json.Encoder()
        # The file outlives this method: close() closes it (open_writer wraps it in a `with`).
        self._f: BufferedIOBase = _open_for_writing(path)
        self._buf = bytearray()

    def write(self, records: Iterable[msgspec.Struct]) -> None:
        buf = self._buf
        for r in records:
            self._encoder.encode_into(r, buf, len(buf))
            buf.extend(b"\n")
        self._f.write(buf)
        buf.clear()

    def close(self) -> None:
        self._f.close()
