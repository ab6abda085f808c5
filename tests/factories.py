"""Small builders of records for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from distillwatch.records import Exchange

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def exchange(
    i: int,
    *,
    account: str = "acct-1",
    seconds: float | None = None,
    text: str | None = "hello",
    **fields: Any,
) -> Exchange:
    """Exchange number ``i``, ``seconds`` after T0 (default: ``i`` seconds)."""
    request = None if text is None else {"messages": [{"role": "user", "content": text}]}
    base: dict[str, Any] = {
        "id": f"ex-{account}-{i:07d}",
        "ts": T0 + timedelta(seconds=i if seconds is None else seconds),
        "account_id": account,
        "ip": "192.0.2.10",
        "model": "frontier-1",
        "request": request,
        "status": 200,
    }
    base.update(fields)
    return Exchange(**base)
