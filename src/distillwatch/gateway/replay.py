"""Replay an exchange log through a running gateway over HTTP, against a recorded upstream.

Used by ``distillwatch demo --live``: ``recorded_upstream`` is an OpenAI-compatible server
that answers each request with the token counts the log recorded for it (so the gateway
logs and scores what the original exchange had), and ``replay`` sends the log's requests,
in time order and as fast as the gateway takes them, each with its account's API key, its
client address (``X-Forwarded-For``) and user agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from distillwatch.gateway.proxy import REPLAY_TS_HEADER
from distillwatch.records import Exchange

_encode = msgspec.json.encode


@dataclass(frozen=True)
class Recorded:
    """What the log says an answer cost."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int | None
    text: str


def request_key(body: Mapping[str, Any]) -> str:
    """The upstream's lookup key for a request: its model and prompt, not its options.

    >>> request_key({"model": "m", "messages": [], "stream": True}) == request_key(
    ...     {"model": "m", "messages": [], "n": 1})
    True
    """
    prompt = body.get("messages", body.get("prompt", body.get("input")))
    return hashlib.sha256(_encode([body.get("model"), prompt])).hexdigest()


def recorded_answers(exchanges: Iterable[Exchange]) -> dict[str, Recorded]:
    """Token counts (and text, when logged) per request, from the log."""
    out: dict[str, Recorded] = {}
    for ex in exchanges:
        if ex.request is None:
            continue
        out[request_key(ex.request)] = Recorded(
            prompt_tokens=ex.prompt_tokens or 0,
            completion_tokens=ex.completion_tokens or 0,
            reasoning_tokens=ex.reasoning_tokens,
            text=ex.response_text or "(the answer recorded in the log)",
        )
    return out


def _usage(rec: Recorded) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "total_tokens": rec.prompt_tokens + rec.completion_tokens,
    }
    if rec.reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": rec.reasoning_tokens}
    return usage


def recorded_upstream(answers: Mapping[str, Recorded]) -> Starlette:
    """An OpenAI-compatible upstream answering from ``answers`` (JSON or SSE streams)."""
    fallback = Recorded(8, 8, None, "(no answer recorded for this request)")

    async def completions(request: Request) -> Response:
        body = msgspec.json.decode(await request.body())
        rec = answers.get(request_key(body), fallback)
        chat = request.url.path.endswith("/chat/completions")
        model = str(body.get("model") or "model")
        n = body.get("n") if isinstance(body.get("n"), int) else 1
        choices = [
            {"index": i, "message": {"role": "assistant", "content": rec.text}}
            if chat
            else {"index": i, "text": rec.text}
            for i in range(max(1, min(n, 8)))
        ]
        kind = "chat.completion" if chat else "text_completion"
        if body.get("stream") is True:
            return StreamingResponse(
                _stream(rec, model, chat, body), media_type="text/event-stream"
            )
        answer = {"id": "rec", "object": kind, "model": model, "choices": choices}
        return Response(_encode({**answer, "usage": _usage(rec)}), media_type="application/json")

    async def embeddings(request: Request) -> Response:
        body = msgspec.json.decode(await request.body())
        data = [{"object": "embedding", "index": 0, "embedding": [0.0, 0.1, 0.2]}]
        usage = {"prompt_tokens": 8, "total_tokens": 8}
        answer = {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        return Response(_encode(answer), media_type="application/json")

    async def models(request: Request) -> Response:
        return Response(_encode({"object": "list", "data": []}), media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


async def _stream(rec: Recorded, model: str, chat: bool, body: dict[str, Any]) -> Any:
    kind = "chat.completion.chunk" if chat else "text_completion"
    piece = {"index": 0, "delta": {"content": rec.text}} if chat else {"index": 0, "text": rec.text}
    yield b"data: " + _encode({"object": kind, "model": model, "choices": [piece]}) + b"\n\n"
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        last = {"object": kind, "model": model, "choices": [], "usage": _usage(rec)}
        yield b"data: " + _encode(last) + b"\n\n"
    yield b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Sent:
    """One replayed request and what the gateway answered (status 0: no answer)."""

    exchange: Exchange
    status: int
    elapsed_s: float


def _body(ex: Exchange) -> bytes:
    if ex.request is not None:
        return _encode(ex.request)
    return _encode({"model": ex.model, "messages": [{"role": "user", "content": ""}]})


async def replay(
    base_url: str,
    exchanges: Iterable[Exchange],
    key_of: Callable[[Exchange], str],
    *,
    concurrency: int = 32,
    send_ts: bool = False,
    on_sent: Callable[[Sent], None] | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Send every exchange's request to the gateway at ``base_url``, in the order given,
    with at most ``concurrency`` in flight; return how many were sent."""
    started = time.perf_counter()
    slots = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)
    sent = 0

    async def one(session: aiohttp.ClientSession, ex: Exchange) -> None:
        headers = {
            "authorization": f"Bearer {key_of(ex)}",
            "content-type": "application/json",
            "user-agent": ex.user_agent or "distillwatch-replay",
            "x-forwarded-for": ex.ip,
        }
        if send_ts:
            headers[REPLAY_TS_HEADER] = ex.ts.isoformat()
        endpoint = ex.endpoint if ex.endpoint in _ENDPOINTS else "/v1/chat/completions"
        try:
            async with session.post(base_url + endpoint, data=_body(ex), headers=headers) as r:
                await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        finally:
            slots.release()
        if on_sent is not None:
            on_sent(Sent(ex, status, time.perf_counter() - started))

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks: set[asyncio.Task[None]] = set()
        for ex in exchanges:
            await slots.acquire()
            task = asyncio.create_task(one(session, ex))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if tasks:
            await asyncio.gather(*tasks)
    return sent


_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
