"""The account's current decision is enforced before forwarding: block, throttle, protect."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from distillwatch.records import Action
from distillwatch.respond.protect import TRANSFORMS
from tests.gateway.conftest import ALICE, BOB, GatewayFactory, Running, Upstream
from tests.gateway.fake_upstream import ANSWER, REASONING
from tests.gateway.http import request
from tests.gateway.policies import fixed_app
from tests.respond.test_throttle import redis_settings

CHAT = "/v1/chat/completions"


def chat(gw: Running, key: str = ALICE, **body: Any) -> Any:
    payload = {"model": "fake-1", "messages": [{"role": "user", "content": "hi"}], **body}
    return request(
        "POST",
        gw.url + CHAT,
        json.dumps(payload).encode(),
        {"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def test_block_is_403_with_a_reference_that_is_the_logged_exchange(
    start_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = start_gateway(app_factory=fixed_app(Action.BLOCK))
    assert chat(gw).status_code == 200  # no decision before the first exchange
    r = chat(gw)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "account_blocked" and err["type"] == "permission_error"
    ref = r.headers["x-distillwatch-reference"]
    assert ref in err["message"] and ref == r.headers["x-distillwatch-exchange-id"]
    assert len(upstream.received) == 1  # the blocked request never reached the upstream
    logged = {e.id: e.status for e in gw.exchanges()}
    assert logged[ref] == 403 and sorted(s or 0 for s in logged.values()) == [200, 403]
    # the SDK surfaces it as PermissionDeniedError
    with (
        openai.OpenAI(base_url=gw.url + "/v1", api_key=ALICE, max_retries=0) as c,
        pytest.raises(openai.PermissionDeniedError),
    ):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_monitor_changes_nothing(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = start_gateway(app_factory=fixed_app(Action.MONITOR))
    for _ in range(3):
        assert chat(gw, logprobs=True, n=2).json()["choices"][1]["logprobs"] is not None
    assert upstream.received[-1]["n"] == 2


def test_throttle_limits_requests_per_account(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(
        app_factory=fixed_app(Action.THROTTLE),
        throttle={"requests": "3/minute", "tokens": "100000/minute"},
    )
    statuses = [chat(gw).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # first: no decision yet; then 3 per minute
    r = chat(gw)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert chat(gw, key=BOB).status_code == 200  # budgets are per account


def test_throttle_is_token_weighted(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(
        app_factory=fixed_app(Action.THROTTLE),
        throttle={"requests": "1000/minute", "tokens": "20/minute"},
    )
    # each answer costs 4 prompt + 6 completion tokens
    statuses = [chat(gw).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert "tokens" in chat(gw).json()["error"]["message"]


def test_throttle_charges_streamed_tokens(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(
        app_factory=fixed_app(Action.THROTTLE),
        throttle={"requests": "1000/minute", "tokens": "20/minute"},
    )
    statuses = [chat(gw, stream=True).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_protect_strips_logprobs_caps_n_and_withholds_reasoning(
    start_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = start_gateway(app_factory=fixed_app(Action.PROTECT), throttle={"requests": "100/minute"})
    first = chat(gw, model="reasoner", logprobs=True, top_logprobs=3, n=3).json()
    assert first["choices"][0]["message"]["reasoning_content"] == REASONING  # not yet decided
    r = chat(gw, model="reasoner", logprobs=True, top_logprobs=3, n=3)
    assert r.status_code == 200
    sent = upstream.received[-1]
    assert "logprobs" not in sent and "top_logprobs" not in sent and sent["n"] == 1
    [choice] = r.json()["choices"]
    assert "reasoning_content" not in choice["message"]
    assert choice["message"]["content"] == ANSWER
    assert choice["logprobs"] is None
    logged = gw.exchanges()[-1]
    assert logged.request is not None and logged.request["n"] == 3  # logged as the client sent it


def test_protect_in_streams_and_summarise(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(
        app_factory=fixed_app(Action.PROTECT),
        throttle={"requests": "100/minute"},
        protect={"reasoning": "summarise"},
    )
    chat(gw)
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=ALICE, max_retries=0) as c:
        chunks = list(
            c.chat.completions.create(
                model="reasoner", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    reasoning = [
        getattr(ch.choices[0].delta, "reasoning_content", None)
        for ch in chunks
        if ch.choices and getattr(ch.choices[0].delta, "reasoning_content", None)
    ]
    assert reasoning == ["The user asks for a capital. […]"]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip() == ANSWER


def test_output_transform_hook_runs_on_protected_answers(start_gateway: GatewayFactory) -> None:
    TRANSFORMS["test-upper"] = lambda: str.upper
    try:
        gw = start_gateway(
            app_factory=fixed_app(Action.PROTECT),
            throttle={"requests": "100/minute"},
            protect={"transforms": ["test-upper"]},
        )
        chat(gw)
        assert chat(gw).json()["choices"][0]["message"]["content"] == ANSWER.upper()
        streamed = chat(gw, stream=True).text
        assert "CAPITAL" in streamed and "capital" not in streamed
    finally:
        del TRANSFORMS["test-upper"]


def test_fail_closed_refuses_when_the_engine_raises(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(
        app_factory=fixed_app(Action.ALLOW, fail=True), engine={"on_error": "closed"}
    )
    assert chat(gw).status_code == 200
    r = chat(gw)
    assert r.status_code == 503 and r.json()["error"]["code"] == "decision_unavailable"


def test_fail_open_serves_when_the_engine_raises(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(app_factory=fixed_app(Action.ALLOW, fail=True), engine={"on_error": "open"})
    assert [chat(gw).status_code for _ in range(3)] == [200, 200, 200]
    metrics = request("GET", gw.url + "/metrics").text
    assert "distillwatch_engine_errors_total 3.0" in metrics


def test_two_replicas_share_throttle_budgets_through_redis(start_gateway: GatewayFactory) -> None:
    settings = redis_settings(requests="4/minute", tokens="100000/minute")
    throttle = settings.model_dump()
    one = start_gateway(app_factory=fixed_app(Action.THROTTLE), throttle=throttle)
    two = start_gateway(app_factory=fixed_app(Action.THROTTLE), throttle=throttle)
    # the first request on each replica has no decision yet; then 4 per minute between them
    statuses = [chat(gw).status_code for gw in (one, two, one, two, one, two, one)]
    assert statuses == [200, 200, 200, 200, 200, 200, 429]


def test_throttle_limits_follow_the_keys_file_tier(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(
        app_factory=fixed_app(Action.THROTTLE),
        throttle={"requests": "1/minute", "tiers": {"enterprise": {"requests": "3/minute"}}},
    )
    alice = [chat(gw).status_code for _ in range(3)]  # no tier
    bob = [chat(gw, key=BOB).status_code for _ in range(5)]  # enterprise in the keys file
    assert alice == [200, 200, 429] and bob == [200, 200, 200, 200, 429]
