"""harvest.tool_rotation: an application's agent keeps its tools; a sweep rotates them."""

from __future__ import annotations

import random
from typing import Any

from distillwatch.records import SignalValue
from distillwatch.signals.base import EvalContext
from distillwatch.signals.harvest import TOOL_SLOTS, ToolRotation, tool_names
from tests.factories import exchange

DOMAINS = {
    "code": ["run_python", "read_file", "write_file"],
    "data": ["sql_query", "plot_chart"],
    "web": ["search_web", "fetch_url"],
    "assistant": ["get_weather", "create_event", "send_email"],
    "commerce": ["lookup_order", "refund_order"],
}


def tools(names: list[str]) -> dict[str, Any]:
    return {"tools": [{"type": "function", "function": {"name": n}} for n in names]}


def last(requests: list[dict[str, Any]]) -> SignalValue:
    sig = ToolRotation()
    st = sig.new_state()
    for i, r in enumerate(requests):
        sig.update(st, exchange(i, request=r), float(i))
    return sig.evaluate(
        st, EvalContext(now=1e9, account=None, tier="paid", exchanges=len(requests))
    )


def subset(rng: random.Random, names: list[str]) -> list[str]:
    return [n for n in names if rng.random() < 0.6] or [rng.choice(names)]


def test_an_agent_with_its_own_tools_scores_nothing() -> None:
    rng = random.Random(1)
    home, others = DOMAINS["code"], [d for k, d in DOMAINS.items() if k != "code"]
    reqs = []
    for _ in range(200):  # its own tools, half the time with another domain's as well
        names = subset(rng, home) + (subset(rng, rng.choice(others)) if rng.random() < 0.5 else [])
        reqs.append(tools(names))
    v = last(reqs)
    assert v.available and v.evidence == 0.0 and v.value is not None and v.value >= 0.5


def test_a_sweep_across_domains_scores() -> None:
    rng = random.Random(2)
    order = list(DOMAINS.values())
    v = last([tools(subset(rng, order[i % len(order)])) for i in range(200)])
    assert v.available and v.evidence >= 0.9, v
    assert "tools rotate" in v.explanation


def test_space_saving_never_undercounts() -> None:
    sig = ToolRotation()
    st = sig.new_state()
    names = [f"t{i}" for i in range(40)]
    for i in range(400):  # "t0" in every request, 39 others cycling through the slots
        sig.update(st, exchange(i, request=tools(["t0", names[1 + i % 39]])), float(i))
    assert len(st.counts) == TOOL_SLOTS and st.counts["t0"] >= 400
    v = sig.evaluate(st, EvalContext(now=1e9, account=None, tier="paid", exchanges=400))
    assert v.evidence == 0.0  # one tool in every request: settled


def test_unavailable_without_tools_or_with_too_few() -> None:
    assert not last([{"messages": []}] * 30).available
    few = last([tools(["a"])] * 9)
    assert not few.available and "fewer than 10" in few.explanation
    assert tool_names({"tools": "nonsense"}) == frozenset()
    assert tool_names({"tools": [{"type": "function", "function": {"name": 3}}]}) == frozenset()


def test_the_value_does_not_depend_on_the_hash_seed() -> None:
    """Space-saving evictions follow the update order: names are counted sorted, not in the
    order a set iterates (which follows the process's string-hash seed)."""
    import os
    import subprocess
    import sys

    code = (
        "import random\n"
        "from tests.signals.test_tool_rotation import tools\n"
        "from tests.factories import exchange\n"
        "from distillwatch.signals.harvest import ToolRotation\n"
        "sig = ToolRotation(); st = sig.new_state(); rng = random.Random(5)\n"
        "names = [f'tool_{i}' for i in range(20)]\n"
        "for i in range(200):\n"
        "    r = tools(rng.sample(names, rng.randint(1, 4)))\n"
        "    sig.update(st, exchange(i, request=r), float(i))\n"
        "print(sorted(st.counts.items()))\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1, outs
