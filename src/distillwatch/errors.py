"""One exception root for the whole package, with a subclass per stage.

Every error carries the context a user needs to fix the input (file, line, field, key),
and ``str(error)`` is a single line the CLI can print as it is.
"""

from __future__ import annotations

from pathlib import Path


class DistillwatchError(Exception):
    """Root of every error distillwatch raises on purpose."""


class ConfigError(DistillwatchError):
    """Settings or a policy file are invalid: names the file, the line where known, and the key."""

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.source = str(source) if source is not None else None
        self.line = line
        self.key = key
        self.reason = message
        where = self.source or ""
        if where and line is not None:
            where = f"{where}:{line}"
        parts = [p for p in (where, f"`{key}`" if key else "", message) if p]
        super().__init__(": ".join(parts))


class LogFormatError(DistillwatchError):
    """An exchange-log, accounts, labels or verdicts file breaks the spec.

    ``line`` is the 1-based line of a JSON Lines file or the 1-based row of a Parquet file.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | Path,
        line: int | None = None,
        field: str | None = None,
        unit: str = "line",
    ) -> None:
        self.source = str(source)
        self.line = line
        self.field = field
        self.reason = message
        self.unit = unit
        where = (
            self.source
            if line is None
            else (f"{self.source}:{line}" if unit == "line" else f"{self.source}: row {line}")
        )
        what = f"field `{field}`: {message}" if field else message
        super().__init__(f"{where}: {what}")


class StoreError(DistillwatchError):
    """The event store cannot be opened, written or read."""


class SignalError(DistillwatchError):
    """A signal is misregistered or misconfigured."""


class PolicyError(ConfigError):
    """A policy file is invalid."""
