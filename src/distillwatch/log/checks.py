"""Checks the spec asks for that a type alone cannot express."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from distillwatch.errors import LogFormatError
from distillwatch.log.kinds import RecordKind
from distillwatch.records import Exchange


@lru_cache(maxsize=1 << 16)
def valid_ip(text: str) -> bool:
    """IPv4 or IPv6 address (cached: logs repeat addresses a lot)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_record(kind: RecordKind, record: Any) -> None:
    """Raise ``LogFormatError`` when a record breaks the spec (the reader adds the location)."""
    if isinstance(record, Exchange) and not valid_ip(record.ip):
        raise LogFormatError(f"not an IPv4 or IPv6 address: {record.ip!r}", source="", field="ip")
