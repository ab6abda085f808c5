"""Tool definitions (OpenAI function-calling shape), shared by agents and capability sweeps.

Developers building agents attach a subset of one application domain's tools; a capability
sweep walks every domain. The definitions are the same objects either way, so the ``tools``
field never names the label by itself.
"""

from __future__ import annotations

import random
from typing import Any

from distillwatch.bench.world import pick


def _tool(name: str, description: str, **props: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
                "required": list(props)[:1],
            },
        },
    }


# Tool definitions by application domain; agents and sweeps attach a subset of one domain.
TOOL_DOMAINS: dict[str, tuple[dict[str, Any], ...]] = {
    "code": (
        _tool("run_python", "Execute Python code and return stdout.", code="string"),
        _tool("read_file", "Read a file from the workspace.", path="string"),
        _tool("write_file", "Write a file in the workspace.", path="string", content="string"),
    ),
    "data": (
        _tool("sql_query", "Run a read-only SQL query.", query="string"),
        _tool("plot_chart", "Plot a chart from columns.", spec="string"),
    ),
    "web": (
        _tool("search_web", "Search the web.", query="string", max_results="integer"),
        _tool("fetch_url", "Fetch a web page as text.", url="string"),
    ),
    "assistant": (
        _tool("get_weather", "Current weather for a city.", city="string"),
        _tool("create_event", "Create a calendar event.", title="string", start="string"),
        _tool("send_email", "Send an email.", to="string", subject="string", body="string"),
    ),
    "commerce": (
        _tool("lookup_order", "Look up an order by id.", order_id="string"),
        _tool("refund_order", "Refund an order.", order_id="string", reason="string"),
    ),
}


def tool_subset(rng: random.Random, domain: str) -> list[dict[str, Any]]:
    """A non-empty subset of a domain's tools, in the domain's order."""
    tools = TOOL_DOMAINS[domain]
    keep = [t for t in tools if rng.random() < 0.6]
    return keep or [pick(rng, tools)]
