from __future__ import annotations

from pathlib import Path

import pytest

from distillwatch.signals import REGISTRY, create_signals
from distillwatch.testing.checks import check_signal

SIGNAL_IDS = [s.id for s in create_signals()]
DOCS = Path(__file__).parents[2] / "docs" / "signals.md"


@pytest.mark.parametrize("signal_id", SIGNAL_IDS)
def test_contract(signal_id: str) -> None:
    check_signal(REGISTRY[signal_id]())


@pytest.mark.parametrize("signal_id", SIGNAL_IDS)
def test_documented(signal_id: str) -> None:
    signal = REGISTRY[signal_id]()
    text = DOCS.read_text(encoding="utf-8")
    assert f"`{signal_id}`" in text, f"{signal_id} is missing from docs/signals.md"
    assert f"v{signal.version}" in text.split(f"`{signal_id}`", 1)[1].split("\n", 1)[0]


def test_at_least_three_families() -> None:
    assert len({s.family for s in create_signals()}) >= 3
