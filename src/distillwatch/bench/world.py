"""What every simulated actor draws from: addresses, clients, models, request shapes, tokens.

Everything here is shared by legitimate and attack profiles on purpose. A value that only
one label can produce (an address range, a user agent, a request field, a length formula)
would let a detector learn the simulator instead of the behaviour; ``tests/bench`` audits
that attack metadata stays inside what legitimate accounts also produce. Profiles differ in
*how* they use these pools (how often an address changes, which prompts, what rhythm),
which is what real detectors see.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import random
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from distillwatch.bench.sources import TraceRow
from distillwatch.records import Exchange

T = TypeVar("T")

ENDPOINT = "/v1/chat/completions"
MODELS = ("frontier-1", "frontier-1-mini")
REASONING_MODELS = frozenset({"frontier-1", "frontier-2"})
NEW_MODEL = "frontier-2"  # released part-way through the log (World.release_at)

USER_AGENTS = {
    "sdk": (
        "openai-python/1.51.2",
        "openai-python/1.40.6",
        "OpenAI/NodeJS/4.67.3",
        "OpenAI/NodeJS/4.52.7",
        "langchain-openai/0.2.2",
    ),
    "http": (
        "python-requests/2.32.3",
        "python-httpx/0.27.2",
        "aiohttp/3.10.10",
        "curl/8.5.0",
        "Go-http-client/2.0",
    ),
    "app": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 ChatClient/3.2",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 ChatClient/3.2",
        "ChatClient/3.1 (iPhone; iOS 17.5)",
        "ChatClient/3.1 (Android 14)",
    ),
}


def chat_client(rng: random.Random) -> str:
    """A chat app's user agent, or an SDK's for chat front-ends built on one."""
    family = "app" if rng.random() < 0.7 else "sdk"
    return pick(rng, USER_AGENTS[family])


def script_client(rng: random.Random) -> str:
    """The user agent of a program calling the API: an SDK or a plain HTTP client."""
    return pick(rng, USER_AGENTS["sdk"] + USER_AGENTS["http"])


CONSUMER_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "qq.com")
# (country, UTC offset in hours) — where accounts say they are; offsets drive diurnal rhythm
COUNTRIES = (
    ("US", -6),
    ("US", -5),
    ("US", -8),
    ("GB", 0),
    ("DE", 1),
    ("FR", 1),
    ("IN", 5),
    ("BR", -3),
    ("JP", 9),
    ("SG", 8),
    ("CN", 8),
    ("CA", -5),
    ("KR", 9),
    ("NG", 1),
)
SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a helpful, concise assistant. Answer in the user's language.",
    "You are a customer-support assistant for an online store. Be polite and brief.",
    "You are an expert tutor. Explain clearly and check the student's understanding.",
    "You are a coding assistant. Prefer short, idiomatic code with brief explanations.",
    "You are a writing assistant that improves clarity and tone without changing meaning.",
)
# relative activity by local hour (0-23): night trough, working-day plateau, evening peak
DIURNAL = (
    0.18, 0.10, 0.06, 0.05, 0.05, 0.08, 0.18, 0.35, 0.60, 0.80, 0.90, 0.95,
    0.90, 0.92, 0.95, 0.93, 0.90, 0.85, 0.85, 0.90, 0.95, 0.85, 0.60, 0.35,
)  # fmt: skip


def _public_prefixes(rng: random.Random, n: int, bits: int) -> list[ipaddress.IPv4Network]:
    out: list[ipaddress.IPv4Network] = []
    while len(out) < n:
        addr = ipaddress.IPv4Address(rng.getrandbits(32))
        net = ipaddress.IPv4Network(f"{addr}/{bits}", strict=False)
        if net.is_global and not net.is_multicast and net not in out:
            out.append(net)
    return out


class Network:
    """Address pools: residential ISPs, mobile carriers, datacenters (clouds, VPN exits)."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"network/{seed}")
        self.residential = _public_prefixes(rng, 240, 16)
        self.mobile = _public_prefixes(rng, 30, 16)
        self.datacenter = _public_prefixes(rng, 40, 20)
        self.v6 = [
            ipaddress.IPv6Network(f"2a0{i % 10}:{rng.getrandbits(16):x}::/32") for i in range(40)
        ]

    @staticmethod
    def _pick(
        rng: random.Random, nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
    ) -> str:
        net = nets[rng.randrange(len(nets))]
        host = rng.randrange(1, min(net.num_addresses - 1, 2**48))
        return str(net.network_address + host)

    def address(self, rng: random.Random, kind: str) -> str:
        """A fresh address of ``kind``: residential, residential6, mobile or datacenter."""
        nets: dict[str, Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {
            "residential": self.residential,
            "residential6": self.v6,
            "mobile": self.mobile,
            "datacenter": self.datacenter,
        }
        return self._pick(rng, nets[kind])


@dataclass
class TokenModel:
    """Completion lengths and latency drawn from real serving traces (Azure, Mooncake)."""

    traces: dict[str, list[TraceRow]]
    _lengths: dict[str, list[int]] = field(default_factory=dict)
    _gaps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, rows in self.traces.items():
            self._lengths[name] = sorted(
                r.completion_tokens for r in rows if r.completion_tokens > 0
            )
        rows = self.traces["azure-conv"]
        gaps = [b.t - a.t for a, b in itertools.pairwise(rows) if b.t > a.t]
        mean = sum(gaps) / len(gaps)
        self._gaps = [g / mean for g in gaps]  # unit-mean: keeps the trace's burstiness

    def completion(self, rng: random.Random, style: str, stretch: float = 1.0) -> int:
        """A completion length from trace ``style`` (azure-conv, azure-code, mooncake-conv)."""
        lengths = self._lengths.get(style) or self._lengths["azure-conv"]
        return max(1, int(lengths[rng.randrange(len(lengths))] * stretch))

    def gap(self, rng: random.Random, mean_s: float) -> float:
        """An inter-arrival gap with the real trace's shape, scaled to ``mean_s``."""
        return self._gaps[rng.randrange(len(self._gaps))] * mean_s


def prompt_tokens(messages: Sequence[dict[str, Any]], tools: Sequence[Any] | None = None) -> int:
    """Approximate tokenizer count: one token per 4 characters plus per-message overhead."""
    n = 3
    for m in messages:
        n += 4 + math.ceil(len(str(m.get("content") or "")) / 4)
    if tools:
        n += sum(math.ceil(len(str(t)) / 4) for t in tools)
    return n


def diurnal_next(rng: random.Random, t: datetime, per_day: float, utc_offset_h: float) -> datetime:
    """Next event of a Poisson process with ``per_day`` events/day following local ``DIURNAL``."""
    peak = max(DIURNAL)
    rate = per_day / 86400.0 / (sum(DIURNAL) / 24) * peak  # candidates per second
    while True:
        t = t + timedelta(seconds=rng.expovariate(rate))
        hour = int((t.hour + utc_offset_h) % 24)
        if rng.random() * peak < DIURNAL[hour]:
            return t


@dataclass
class World:
    """The shared environment of one simulated log."""

    seed: int
    start: datetime
    end: datetime
    tokens: TokenModel
    release_at: datetime  # when NEW_MODEL becomes available
    network: Network = field(init=False)

    def __post_init__(self) -> None:
        self.network = Network(self.seed)

    def models(self, t: datetime) -> tuple[str, ...]:
        return (*MODELS, NEW_MODEL) if t >= self.release_at else MODELS

    def exchange(
        self,
        rng: random.Random,
        *,
        account_id: str,
        ts: datetime,
        ip: str,
        user_agent: str | None,
        model: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        style: str = "azure-conv",
        stretch: float = 1.0,
    ) -> Exchange:
        """One served (or failed) exchange; every profile builds its exchanges here."""
        request: dict[str, Any] = {"model": model, "messages": messages, **params}
        status = 200
        r = rng.random()
        if r < 0.004:
            status = 500
        elif r < 0.012:
            status = 429
        completion = reasoning = None
        latency = rng.lognormvariate(math.log(250), 0.4)
        if status == 200:
            n = int(params.get("n") or 1)
            cap = params.get("max_tokens")
            completion = sum(self.tokens.completion(rng, style, stretch) for _ in range(n))
            if cap:
                completion = min(completion, int(cap) * n)
            if model in REASONING_MODELS:
                reasoning = int(completion * rng.uniform(0.2, 0.7))
            latency += (completion + (reasoning or 0)) * rng.uniform(12.0, 30.0) / n
        return Exchange(
            id=f"ex_{rng.getrandbits(64):016x}",
            ts=ts,
            account_id=account_id,
            ip=ip,
            user_agent=user_agent,
            model=model,
            endpoint=ENDPOINT,
            request=request,
            prompt_tokens=prompt_tokens(messages, params.get("tools")),
            completion_tokens=completion,
            reasoning_tokens=reasoning,
            status=status,
            latency_ms=round(latency, 1),
        )


def weighted(rng: random.Random, options: Sequence[tuple[T, float]]) -> T:
    """One of ``options`` (value, weight)."""
    cum: list[float] = []
    total = 0.0
    for _, w in options:
        total += w
        cum.append(total)
    return options[bisect_left(cum, rng.random() * total)][0]


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """One of ``items``, uniformly."""
    return items[rng.randrange(len(items))]


# Prompt templates real clients wrap tasks in. Both labels draw from the same pools: evaluation
# harnesses use chain-of-thought templates (the gsm8k / simple-evals style), automations use
# task templates, and harvesters use both; who uses them how often is the behaviour.
REASONING_TEMPLATES = (
    "{q}\n\nLet's think step by step.",
    "Question: {q}\nAnswer: Let's think step by step.",
    "Solve the following problem step by step. The last line of your response should be of "
    "the form Answer: $ANSWER.\n\n{q}",
    "{q}\n\nExplain your reasoning in detail before giving the final answer.",
    "Please reason carefully and show all intermediate steps.\n\n{q}",
    "{q}\nWalk me through your thought process, then state the result.",
)
TASK_TEMPLATES = (
    "Summarize the following text in two sentences:\n\n{q}",
    "Classify the intent of this message (question, request, complaint, other). "
    "Reply with one word.\n\n{q}",
    "Extract the key points of the following as a JSON list of strings:\n\n{q}",
    "Translate the following into French:\n\n{q}",
    "Rewrite the following to be clearer and more concise:\n\n{q}",
    "{q}",
)
CODE_TEMPLATES = (
    "Complete the following Python function:\n```python\n{q}\n```",
    "{q}",
    "Write a solution to the following task. Return only the code.\n\n{q}",
)
# LLM-as-judge and reward-model prompts. Researchers and developers grade outputs this way
# (the MT-Bench judge prompt is the first); the public distillation reports describe
# campaigns generating rubric-grading tasks to make the teacher act as a reward model.
RUBRIC_TEMPLATES = (
    "Please act as an impartial judge and evaluate the quality of the response an AI assistant "
    "should give to the user question displayed below. Consider helpfulness, relevance, "
    "accuracy, depth and level of detail. Explain your evaluation, then rate it from 1 to 10 "
    'in the format "[[rating]]".\n\n[Question]\n{q}',
    "You are a reward model. Write a reference answer to the task below, then grade it "
    "against a rubric of correctness, completeness and clarity (1-10 each), justifying every "
    "score.\n\nTask: {q}",
    "Create a grading rubric (criteria, weights, what earns full marks) for responses to the "
    "following prompt, then apply it to a model answer you write yourself.\n\n{q}",
    "Score an ideal answer to the following from 1 to 5 on factual accuracy, reasoning "
    "quality and instruction following, with one sentence of justification each.\n\n{q}",
)
# Content rewriting. Moderation backends clean user text this way; the reports describe
# campaigns asking for "safe" rewrites of sensitive queries to train a censoring student.
REWRITE_TEMPLATES = (
    "Rewrite the following user message to remove offensive, unsafe or sensitive content. "
    "Keep its intent if that is harmless.\n\n{q}",
    "Rewrite the following so that it avoids politically sensitive or controversial content "
    "while keeping as much of its meaning as possible.\n\n{q}",
    "Give a version of this request that would be acceptable under strict content guidelines, "
    "then answer that version.\n\n{q}",
    "Moderate this text: list anything sensitive it contains, then give a cleaned-up "
    "version.\n\n{q}",
)
# Tasks handed to a model with tools attached (agents built by developers, capability sweeps).
AGENT_TEMPLATES = (
    "{q}",
    "You have access to tools. Use them when they help, then give the final answer.\n\n{q}",
    "Plan the steps for the task below, call tools as needed and report the result.\n\n{q}",
)
# How people (and paraphrasing pipelines) dress a question up. Chat users use these too.
LEAD_INS = (
    "",
    "Hi! ",
    "Quick question: ",
    "Can you help me with this?\n\n",
    "I need some help with the following.\n\n",
    "Hello, could you help? ",
    "Please help: ",
    "I've been stuck on this for a while.\n",
    "Here's what I'm working on:\n",
    "Question for you: ",
    "My task is below.\n\n",
    "Hey, ",
)
CLOSINGS = (
    "",
    " Thanks!",
    "\n\nThanks in advance.",
    " Please be thorough.",
    " Keep it short.",
    " Thank you.",
    "\n\nAny help is appreciated.",
    " I'd like a clear explanation.",
)


def vary(text: str, variant: int, breadth: float = 1.0) -> str:
    """``text`` re-worded as variant ``variant``: a lead-in and a closing from the pools.

    ``breadth`` (0..1) is how much of the phrasing pools is used; at 0 the text is unchanged.
    Distinct variants below ``variants(breadth)`` give distinct texts.

    >>> vary("What is 2+2?", 0), vary("What is 2+2?", 13)
    ('What is 2+2?', 'Hi! What is 2+2? Thanks!')
    """
    leads, closes = _widths(breadth)
    return f"{LEAD_INS[variant % leads]}{text}{CLOSINGS[(variant // leads) % closes]}"


def variants(breadth: float) -> int:
    """How many distinct re-wordings ``vary`` makes at ``breadth``."""
    leads, closes = _widths(breadth)
    return leads * closes


def _widths(breadth: float) -> tuple[int, int]:
    b = min(1.0, max(0.0, breadth))
    return 1 + round(b * (len(LEAD_INS) - 1)), 1 + round(b * (len(CLOSINGS) - 1))
