"""The official ``openai`` SDK works through the gateway unchanged (sync, async, streams, tools)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from distillwatch.cli.main import app
from distillwatch.gateway.durable_log import segments
from distillwatch.log import read_verdicts
from tests.gateway.conftest import ALICE, BOB, GatewayFactory, Running, Upstream
from tests.gateway.fake_upstream import ANSWER


def client(gw: Running, key: str = ALICE) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_sync_chat_is_answered_and_logged(gateway: Running) -> None:
    with client(gateway) as c:
        r = c.chat.completions.create(
            model="fake-1", messages=[{"role": "user", "content": "Capital of France?"}]
        )
    assert r.choices[0].message.content == ANSWER
    [ex] = gateway.exchanges()
    assert ex.account_id == "acct-alice"
    assert ex.endpoint == "/v1/chat/completions"
    assert ex.model == "fake-1"
    assert ex.status == 200
    assert ex.response_text == ANSWER
    assert ex.prompt_tokens == r.usage.prompt_tokens if r.usage else False
    assert ex.completion_tokens == len(ANSWER.split())
    assert ex.request == {
        "model": "fake-1",
        "messages": [{"role": "user", "content": "Capital of France?"}],
    }
    assert ex.ip == "127.0.0.1"
    assert ex.user_agent and ex.user_agent.startswith("OpenAI/Python")
    assert ex.api_key_id and ALICE not in ex.api_key_id


def test_streaming_chat_passes_chunks_and_records_text_and_usage(
    gateway: Running, upstream: Upstream
) -> None:
    with client(gateway, BOB) as c:
        stream = c.chat.completions.create(
            model="fake-1", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip() == ANSWER
    # the client did not ask for usage: the gateway asked upstream, and kept the chunk to itself
    assert all(ch.usage is None for ch in chunks)
    assert upstream.received[-1]["stream_options"] == {"include_usage": True}
    [ex] = gateway.exchanges()
    assert ex.account_id == "acct-bob" and ex.api_key_id == "bob-ci"
    assert ex.response_text is not None and ex.response_text.strip() == ANSWER
    assert ex.completion_tokens == len(ANSWER.split())
    assert ex.request is not None and "stream_options" not in ex.request  # logged as sent


def test_stream_with_usage_requested_keeps_the_usage_chunk(gateway: Running) -> None:
    with client(gateway) as c:
        chunks = list(
            c.chat.completions.create(
                model="fake-1",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_tool_calls_round_trip(gateway: Running) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    with client(gateway) as c:
        r = c.chat.completions.create(
            model="fake-1",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=tools,  # type: ignore[arg-type]
        )
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert gateway.exchanges()[0].request["tools"] == tools  # type: ignore[index]


def test_async_client_concurrent_requests_and_stream(gateway: Running) -> None:
    async def go() -> tuple[list[str], str]:
        async with openai.AsyncOpenAI(
            base_url=gateway.url + "/v1", api_key=ALICE, max_retries=0
        ) as c:
            results = await asyncio.gather(
                *(
                    c.chat.completions.create(
                        model="fake-1", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    for i in range(10)
                )
            )
            stream = await c.chat.completions.create(
                model="fake-1", messages=[{"role": "user", "content": "s"}], stream=True
            )
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
        return [r.choices[0].message.content or "" for r in results], text

    answers, streamed = asyncio.run(go())
    assert answers == [ANSWER] * 10
    assert streamed.strip() == ANSWER
    assert len(gateway.exchanges()) == 11


def test_completions_embeddings_and_models(gateway: Running) -> None:
    with client(gateway) as c:
        comp = c.completions.create(model="fake-1", prompt="Say it")
        emb = c.embeddings.create(model="embed-1", input=["a", "b"])
        models = c.models.list()
        streamed = "".join(
            ch.choices[0].text
            for ch in c.completions.create(model="fake-1", prompt="x", stream=True)
        )
    assert comp.choices[0].text == ANSWER
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert [m.id for m in models.data] == ["fake-1"]
    assert streamed.strip() == ANSWER
    logged = {
        (e.endpoint, e.request.get("stream") if e.request else None) for e in gateway.exchanges()
    }
    assert logged == {
        ("/v1/completions", None),
        ("/v1/embeddings", None),
        ("/v1/completions", True),
    }  # /v1/models is metadata: not an exchange


def test_unknown_key_is_401_in_openai_shape(gateway: Running) -> None:
    with (
        client(gateway, "sk-not-a-real-key-123") as c,
        pytest.raises(openai.AuthenticationError) as e,
    ):
        c.chat.completions.create(model="fake-1", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"
    assert e.value.type == "authentication_error"
    assert gateway.exchanges() == []


def test_the_log_is_an_exchange_log_scan_reads(gateway: Running, tmp_path: Path) -> None:
    with client(gateway) as c:
        for i in range(3):
            c.chat.completions.create(
                model="fake-1", messages=[{"role": "user", "content": f"{i}"}]
            )
    [segment] = segments(gateway.log_dir)
    out = tmp_path / "verdicts.jsonl"
    r = CliRunner().invoke(app, ["validate", str(segment)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["scan", str(segment), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert [v.account_id for v in read_verdicts(out)] == ["acct-alice"]


def test_a_client_leaving_mid_stream_is_logged_as_499(start_gateway: GatewayFactory) -> None:
    import socket
    import time

    gw = start_gateway()
    host, port = gw.url.removeprefix("http://").split(":")
    body = b'{"model": "stall", "stream": true, "messages": [{"role": "user", "content": "x"}]}'
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ALICE}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert b"200 OK" in s.recv(65536)  # headers and the first chunk, then the upstream stalls
    deadline = time.monotonic() + 10
    while not gateway_exchanges(gw) and time.monotonic() < deadline:
        time.sleep(0.05)
    [ex] = gw.exchanges()
    assert ex.status == 499 and ex.model == "stall"


def gateway_exchanges(gw: Running) -> int:
    return len(gw.exchanges()) if gw.log_dir.exists() else 0
