"""Every refusal is OpenAI's error shape, from the one canonical body function."""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import pytest

from distillwatch.respond import errors
from distillwatch.respond.errors import error_body
from tests.gateway.conftest import ALICE, GatewayFactory, Running
from tests.gateway.fake_upstream import free_port
from tests.gateway.http import request

SRC = Path(__file__).parents[2] / "src" / "distillwatch"
KEYS = {"message", "type", "param", "code"}


def assert_canonical(resp: Any, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == KEYS
    err = body["error"]
    assert body == error_body(err["message"], type=err["type"], code=code, param=param)
    assert isinstance(err["message"], str) and err["message"]
    return dict(err)


def post(gw: Running, path: str, data: Any = None, key: str | None = ALICE, **kw: Any) -> Any:
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return request("POST", gw.url + path, data, headers)


def test_error_body_is_the_only_place_an_error_object_is_built() -> None:
    """No other module of the gateway or respond stage writes an ``{"error": ...}`` literal."""
    offenders = []
    for pkg in ("gateway", "respond"):
        for path in (SRC / pkg).rglob("*.py"):
            if path.name == "errors.py" and pkg == "respond":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "error" for k in node.keys
                ):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    ("factory", "args"),
    [
        (errors.bad_request, ("x",)),
        (errors.unauthorized, ("x",)),
        (errors.blocked, ("dw-1",)),
        (errors.not_found, ("/x",)),
        (errors.method_not_allowed, ("GET", "/x")),
        (errors.too_large, (10,)),
        (errors.rate_limited, ("x", 3)),
        (errors.bad_gateway, ("x",)),
        (errors.unavailable, ("x",)),
        (errors.gateway_timeout, (1.5,)),
        (errors.internal_error, ("dw-1",)),
    ],
)
def test_every_refusal_uses_the_canonical_shape(factory: Any, args: tuple[Any, ...]) -> None:
    refusal = factory(*args)
    assert set(refusal.body()["error"]) == KEYS
    assert 400 <= refusal.status <= 599


def test_missing_and_malformed_keys_are_401(gateway: Running) -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
    assert_canonical(post(gateway, "/v1/chat/completions", body, key=None), 401, "invalid_api_key")
    r = post(
        gateway, "/v1/chat/completions", body, key=None, headers={"authorization": "Basic abc"}
    )
    assert_canonical(r, 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("data", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": "hello"}', "messages"),
        (b'{"model": "m", "messages": [{"content": "x"}]}', "messages"),
        (b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
        (b'{"model": "m", "messages": [{"role": "user"}], "n": true}', "n"),
        (b'{"model": "m", "messages": [{"role": "user"}], "temperature": "hot"}', "temperature"),
        (b'{"model": "m", "messages": [{"role": "user"}], "max_tokens": -1}', "max_tokens"),
    ],
)
def test_malformed_bodies_are_400(gateway: Running, data: bytes, param: str | None) -> None:
    err = assert_canonical(
        post(gateway, "/v1/chat/completions", data), 400, "invalid_request", param
    )
    assert err["type"] == "invalid_request_error"


def test_wrong_types_on_other_endpoints_are_400(gateway: Running) -> None:
    r = post(gateway, "/v1/embeddings", b'{"model": "e", "input": 3}')
    assert_canonical(r, 400, "invalid_request", "input")
    r = post(gateway, "/v1/completions", b'{"model": "m", "prompt": {"a": 1}}')
    assert_canonical(r, 400, "invalid_request", "prompt")


def test_oversize_body_is_413(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(max_body_bytes=1000)
    big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 2000 + b'"}]}'
    assert_canonical(post(gw, "/v1/chat/completions", big), 413, "request_too_large")

    def chunks() -> Any:  # no Content-Length: the limit holds while streaming the body in
        yield big[:600]
        yield big[600:]

    r = post(gw, "/v1/chat/completions", chunks())
    assert_canonical(r, 413, "request_too_large")
    ok = b'{"model": "m", "messages": [{"role": "user", "content": "short"}]}'
    assert post(gw, "/v1/chat/completions", ok).status_code == 200


def test_unknown_path_and_method_are_openai_errors(gateway: Running) -> None:
    r = request("GET", gateway.url + "/v1/nope")
    assert_canonical(r, 404, "unknown_url")
    r = request("GET", gateway.url + "/v1/chat/completions")
    assert_canonical(r, 405, "method_not_allowed")


def test_upstream_down_is_502_quickly(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(upstream=f"http://127.0.0.1:{free_port()}/v1", upstream_timeout_s=5)
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
    started = time.monotonic()
    r = post(gw, "/v1/chat/completions", body)
    assert time.monotonic() - started < 5
    assert_canonical(r, 502, "upstream_unavailable")
    [ex] = gw.exchanges()  # the refused exchange is logged, with the status the client got
    assert ex.status == 502 and ex.id == r.headers["x-distillwatch-exchange-id"]


def test_slow_upstream_is_504_within_the_timeout(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(upstream_timeout_s=0.5)
    body = b'{"model": "slow-3000", "messages": [{"role": "user", "content": "x"}]}'
    started = time.monotonic()
    r = post(gw, "/v1/chat/completions", body)
    took = time.monotonic() - started
    assert_canonical(r, 504, "upstream_timeout")
    assert 0.4 < took < 2.0


def test_stalled_stream_ends_with_an_error_event(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(upstream_timeout_s=0.5)
    body = b'{"model": "stall", "stream": true, "messages": [{"role": "user", "content": "x"}]}'
    started = time.monotonic()
    r = post(gw, "/v1/chat/completions", body)
    assert time.monotonic() - started < 3
    assert r.status_code == 200  # headers were sent before the upstream stalled
    events = [e for e in r.text.split("\n\n") if e]
    assert "[DONE]" not in r.text
    import json

    last = json.loads(events[-1].removeprefix("data: "))
    assert set(last) == {"error"} and last["error"]["code"] == "upstream_timeout"
    [ex] = gw.exchanges()
    assert ex.status == 504


def test_models_when_upstream_down_is_502(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(upstream=f"http://127.0.0.1:{free_port()}/v1")
    r = request("GET", gw.url + "/v1/models", headers={"authorization": f"Bearer {ALICE}"})
    assert_canonical(r, 502, "upstream_unavailable")
