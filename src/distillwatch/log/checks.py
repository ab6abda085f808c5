"""Checks the spec asks for that a type alone cannot express."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any

from distillwatch.errors import LogFormatError
from distillwatch.log.kinds import RecordKind
from distillwatch.records import Exchange

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}").fullmatch
"""Exactly the IPv4 addresses ``ipaddress`` accepts (four decimal octets ≤ 255, no leading
zeros): a fast path, anything else is left to ``ipaddress``."""


@lru_cache(maxsize=1 << 16)
def valid_ip(text: str) -> bool:
    """IPv4 or IPv6 address (cached: logs repeat addresses a lot).

    >>> valid_ip("203.0.113.7"), valid_ip("2001:db8::1"), valid_ip("203.0.113.07")
    (True, True, False)
    """
    if _DOTTED_QUAD(text) is not None:
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_record(kind: RecordKind, record: Any) -> None:
    """Raise ``LogFormatError`` when a record breaks the spec (the reader adds the location)."""
    if isinstance(record, Exchange) and not valid_ip(record.ip):
        raise LogFormatError(f"not an IPv4 or IPv6 address: {record.ip!r}", source="", field="ip")
