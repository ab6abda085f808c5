"""Server-sent events: split an upstream byte stream into events, and read what they carry.

>>> s = SSESplitter()
>>> s.feed(b'data: {"a": 1}\\n\\nda')
[b'data: {"a": 1}\\n\\n']
>>> s.feed(b'ta: [DONE]\\n\\n')
[b'data: [DONE]\\n\\n']
>>> event_data(b'data: [DONE]\\n\\n')
b'[DONE]'
"""

from __future__ import annotations

from typing import Any

import msgspec

DONE = b"[DONE]"
_decode = msgspec.json.decode


class SSESplitter:
    """Feed bytes as they arrive; get back every event completed so far (with its blank line)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        buf = self._buf + data
        events = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            events.append(buf[start : end + 2])
            start = end + 2
        self._buf = buf[start:]
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (an upstream that ended mid-event)."""
        rest, self._buf = self._buf, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The ``data:`` payload of one event (lines joined by ``\\n``), None if it has none."""
    parts = [
        line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else b"\n".join(parts)


def encode_event(payload: Any) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def decode_json(data: bytes) -> dict[str, Any] | None:
    """A JSON object, or None if ``data`` is not one."""
    try:
        value = _decode(data)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None
