"""The contract every signal must meet, as plain functions (``tests/signals`` runs them all).

Third-party signals can call ``check_signal(MySignal())`` in their own test suites.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext, Signal

_T0 = datetime(2026, 3, 1, tzinfo=UTC)
MAX_ABS_EVIDENCE = 10.0


def sample_exchanges(n: int = 200, *, with_text: bool = True) -> list[Exchange]:
    """A varied, deterministic stream for one account (text and metadata-only)."""
    texts = [
        "Solve step by step: 17*23",
        "hello!",
        "Summarise this article for me",
        "Show your work: integrate x^2",
        "¿Qué hora es?",
    ]
    out = []
    for i in range(n):
        request = (
            {"messages": [{"role": "user", "content": texts[i % len(texts)]}]}
            if with_text
            else None
        )
        out.append(
            Exchange(
                id=f"c{i}",
                ts=_T0 + timedelta(seconds=i * 7 + (i % 5) ** 2),
                account_id="contract",
                ip="192.0.2.7",
                model="m",
                request=request,
                status=200,
            )
        )
    return out


def _values(signal: Signal, stream: list[Exchange]) -> list[SignalValue]:
    state = signal.new_state()
    values = []
    for i, e in enumerate(stream, start=1):
        t = e.ts.timestamp()
        signal.update(state, e, t)
        values.append(
            signal.evaluate(state, EvalContext(now=t, account=None, tier="free", exchanges=i))
        )
    return values


def check_signal(signal: Signal) -> None:
    """Raise AssertionError if ``signal`` breaks the contract."""
    assert isinstance(signal, Signal), "does not implement the Signal protocol"
    assert signal.id and "." in signal.id, "id must be 'family.name'"
    assert signal.id.split(".")[0] == signal.family, "id must start with its family"
    assert signal.version >= 1
    assert signal.summary
    doc = type(signal).__doc__ or ""
    assert ">>>" in doc, "the class docstring must carry a runnable example"
    for with_text in (True, False):
        values = _values(signal, sample_exchanges(with_text=with_text))
        for v in values:
            assert v.signal_id == signal.id and v.version == signal.version
            assert v.explanation and "\n" not in v.explanation
            assert math.isfinite(v.evidence) and abs(v.evidence) <= MAX_ABS_EVIDENCE
            if not v.available:
                assert v.evidence == 0.0 and v.value is None
        if not with_text and signal.needs_text:
            assert not any(v.available for v in values), "needs_text but computed without text"
        # Deterministic: a fresh instance on the same stream says exactly the same.
        again = _values(type(signal)(), sample_exchanges(with_text=with_text))
        assert again == values, "not deterministic"
