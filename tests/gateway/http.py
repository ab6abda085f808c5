"""A tiny blocking HTTP client for tests (standard library only)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Resp:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


def request(
    method: str,
    url: str,
    data: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Resp:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        chunked = data is not None and not isinstance(data, bytes)
        conn.request(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=data,
            headers=headers or {},
            encode_chunked=chunked,
        )
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()
