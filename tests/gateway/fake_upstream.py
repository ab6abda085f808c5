"""A tiny OpenAI-compatible upstream for tests and the gateway benchmark.

Behaviour is chosen by the model name: ``reasoner`` adds reasoning content, ``slow-<ms>``
waits before answering, ``stall`` starts a stream and then stops sending. Every request
body received is kept in ``app.state.received`` so tests can see what was forwarded.
``python -m tests.gateway.fake_upstream --port N [--delay-ms D]`` serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "The capital of France is Paris."
REASONING = "The user asks for a capital. France's capital is Paris. Answer briefly."


def _delay(model: str, default_ms: float) -> float:
    if model.startswith("slow-"):
        return float(model.removeprefix("slow-")) / 1000.0
    return default_ms / 1000.0


def _usage(prompt: str, completion: str, reasoning: bool) -> dict[str, Any]:
    p, c = len(prompt.split()) + 3, len(completion.split())
    usage: dict[str, Any] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": len(REASONING.split())}
    return usage


def _prompt(body: dict[str, Any]) -> str:
    if isinstance(body.get("messages"), list):
        return " ".join(str(m.get("content") or "") for m in body["messages"])
    return str(body.get("prompt", ""))


def create_fake_upstream(delay_ms: float = 0.0) -> Starlette:
    received: list[dict[str, Any]] = []

    async def chat(request: Request) -> Response:
        body = await request.json()
        received.append(body)
        model = str(body.get("model", ""))
        await asyncio.sleep(_delay(model, delay_ms))
        reasoning = model == "reasoner"
        n = min(8, int(body.get("n") or 1))  # fuzzers ask for a billion
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "function" in t]
        if body.get("stream"):
            return StreamingResponse(
                _chat_stream(body, reasoning, n), media_type="text/event-stream"
            )
        choices = []
        for i in range(n):
            message: dict[str, Any] = {"role": "assistant", "content": ANSWER}
            finish = "stop"
            if tools:
                name = str(tools[0]["function"].get("name", "tool"))
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps({"city": "Paris"})},
                        }
                    ],
                }
                finish = "tool_calls"
            if reasoning:
                message["reasoning_content"] = REASONING
            choice: dict[str, Any] = {"index": i, "message": message, "finish_reason": finish}
            choice["logprobs"] = (
                {"content": [{"token": "The", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}
                if body.get("logprobs")
                else None
            )
            choices.append(choice)
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": _usage(_prompt(body), ANSWER, reasoning),
            }
        )

    async def _chat_stream(body: dict[str, Any], reasoning: bool, n: int) -> AsyncIterator[bytes]:
        model = str(body.get("model"))
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

        yield event(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        if model == "stall":
            await asyncio.sleep(3600)
        if reasoning:
            for piece in REASONING.split(" "):
                yield event(
                    [
                        {
                            "index": 0,
                            "delta": {"reasoning_content": piece + " "},
                            "finish_reason": None,
                        }
                    ]
                )
        for word in ANSWER.split(" "):
            for i in range(n):
                yield event([{"index": i, "delta": {"content": word + " "}, "finish_reason": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": "stop"} for i in range(n)])
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            yield event([], usage=_usage(_prompt(body), ANSWER, reasoning))
        yield b"data: [DONE]\n\n"

    async def completions(request: Request) -> Response:
        body = await request.json()
        received.append(body)
        await asyncio.sleep(_delay(str(body.get("model", "")), delay_ms))
        if body.get("stream"):

            async def gen() -> AsyncIterator[bytes]:
                for word in ANSWER.split(" "):
                    chunk = {"id": "cmpl-fake", "object": "text_completion", "created": 1,
                             "model": body["model"],
                             "choices": [{"index": 0, "text": word + " ", "finish_reason": None,
                                          "logprobs": None}]}  # fmt: skip
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"id": "cmpl-fake", "object": "text_completion", "created": 1,
                             "model": body["model"], "choices": [],
                             "usage": _usage(_prompt(body), ANSWER, False)}  # fmt: skip
                    yield b"data: " + json.dumps(usage).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"

            return StreamingResponse(gen(), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {"index": 0, "text": ANSWER, "finish_reason": "stop", "logprobs": None}
                ],
                "usage": _usage(_prompt(body), ANSWER, False),
            }
        )

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        received.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse(
            {
                "object": "list",
                "model": body["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1] * 8}
                    for i in range(len(inputs))
                ],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "fake-1", "object": "model", "created": 1, "owned_by": "tests"}],
            }
        )

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.received = received
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app on loopback in a thread; yield its base URL; stop it afterwards."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(
        create_fake_upstream(args.delay_ms),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
