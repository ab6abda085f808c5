"""Turn msgspec's validation messages into the spec's vocabulary (field path, reason)."""

from __future__ import annotations

import re

_AT = re.compile(r"^(?P<msg>.*?) - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def split_validation_message(text: str) -> tuple[str | None, str]:
    """``"Expected `str`, got `int` - at `$.account_id`"`` → ``("account_id", "expected str, …")``.

    >>> split_validation_message("Object missing required field `ts`")
    ('ts', 'missing required field')
    """
    path = ""
    m = _AT.match(text)
    if m:
        text, path = m.group("msg"), m.group("path").lstrip(".")
    missing = _MISSING.match(text)
    if missing:
        field = f"{path}.{missing.group('field')}" if path else missing.group("field")
        return field, "missing required field"
    reason = text.replace("`", "")
    reason = reason[:1].lower() + reason[1:]
    return (path or None), reason
