"""LiteLLM's Generic Guardrail API and ``generic_api`` log webhook, against the documented contract.

The request and response shapes follow LiteLLM's documentation (no ``litellm`` package):

- Generic Guardrail API: https://docs.litellm.ai/docs/adding_provider/generic_guardrail_api
  (``POST {api_base}/beta/litellm_basic_guardrail_api``; ``texts``, ``request_data`` with
  ``user_api_key_*`` ids, ``input_type`` request/response, ``litellm_call_id``; answers
  ``action`` NONE / BLOCKED (+ ``blocked_reason``) / GUARDRAIL_INTERVENED (+ ``texts``));
- ``generic_api`` callback: https://docs.litellm.ai/docs/observability/generic_api (a JSON
  array by default, ``ndjson`` or ``single``) carrying ``StandardLoggingPayload`` objects:
  https://docs.litellm.ai/docs/proxy/logging_spec .
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from distillwatch.records import Action
from distillwatch.respond.protect import TRANSFORMS
from tests.gateway.conftest import ALICE, BOB, GatewayFactory, Running
from tests.gateway.http import Resp, request
from tests.gateway.policies import fixed_app

TOKEN = "litellm-shared-secret-0001"
GUARDRAIL = "/litellm/beta/litellm_basic_guardrail_api"
LOGS = "/litellm/logs"


def key_hash(key: str) -> str:
    """LiteLLM's ``user_api_key_hash``: the SHA-256 of the virtual key, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def guardrail_call(
    input_type: str = "request", texts: list[str] | None = None, **ids: str
) -> dict[str, Any]:
    """The documented request body (the docs' example, with real ids filled in)."""
    request_data = {
        "user_api_key_hash": key_hash(ALICE),
        "user_api_key_alias": "alias of the litellm virtual key used",
        "user_api_key_user_id": "user-1",
        "user_api_key_user_email": "someone@example.com",
        "user_api_key_team_id": "team-1",
        "user_api_key_team_alias": "team alias",
        "user_api_key_end_user_id": "end-user-1",
        "user_api_key_org_id": "org-1",
    }
    request_data.update(ids)
    return {
        "texts": texts if texts is not None else ["extracted text from the request"],
        "images": [],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get the current weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                    },
                },
            }
        ],
        "request_data": request_data,
        "input_type": input_type,
        "litellm_call_id": "call-0001",
        "litellm_trace_id": "trace-0001",
        "additional_provider_specific_params": {"threshold": 0.8},
    }


def log_record(i: int, key: str = ALICE, **extra: Any) -> dict[str, Any]:
    """A ``StandardLoggingPayload`` as the logging spec describes it."""
    record: dict[str, Any] = {
        "id": f"chatcmpl-{i:04d}",
        "trace_id": f"trace-{i}",
        "call_type": "acompletion",
        "response_cost": 0.0001,
        "status": "success",
        "total_tokens": 12,
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "startTime": 1767225600.0 + i,
        "endTime": 1767225600.25 + i,
        "completionStartTime": 1767225600.1 + i,
        "response_time": 0.25,
        "model": "gpt-3.5-turbo",
        "model_id": "deployment-1",
        "model_group": "gpt-3.5-turbo",
        "api_base": "https://api.openai.com/v1",
        "metadata": {
            "user_api_key_hash": key_hash(key),
            "user_api_key_alias": None,
            "user_api_key_org_id": None,
            "user_api_key_team_id": "team-1",
            "user_api_key_user_id": "user-1",
            "user_api_key_team_alias": None,
            "spend_logs_metadata": None,
            "requester_ip_address": "203.0.113.7",
            "requester_metadata": {},
        },
        "cache_hit": False,
        "request_tags": [],
        "end_user": None,
        "requester_ip_address": "203.0.113.7",
        "messages": [{"role": "user", "content": f"question number {i}"}],
        "response": {
            "id": f"chatcmpl-{i:04d}",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        },
        "error_str": None,
        "model_parameters": {"temperature": 0.2, "max_tokens": 64},
        "hidden_params": {"model_id": "deployment-1", "litellm_model_name": "gpt-3.5-turbo"},
    }
    record.update(extra)
    return record


def post(gw: Running, path: str, body: Any, token: str | None = TOKEN, raw: bool = False) -> Resp:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = body if raw else json.dumps(body).encode()
    return request("POST", gw.url + path, data, headers)


def litellm_gateway(start: GatewayFactory, action: Action, **fields: Any) -> Running:
    settings = {"token": TOKEN, **fields.pop("litellm", {})}
    return start(app_factory=fixed_app(action), litellm=settings, **fields)


def test_both_endpoints_need_the_token(start_gateway: GatewayFactory) -> None:
    gw = litellm_gateway(start_gateway, Action.ALLOW)
    for path, body in ((GUARDRAIL, guardrail_call()), (LOGS, [log_record(1)])):
        for token in (None, "wrong-token-0000000000"):
            r = post(gw, path, body, token=token)
            assert r.status_code == 401
            assert r.json()["error"]["type"] == "authentication_error"
    r = request(
        "POST",
        gw.url + GUARDRAIL,
        json.dumps(guardrail_call()).encode(),
        {"x-api-key": TOKEN, "content-type": "application/json"},
    )
    assert r.status_code == 200 and r.json() == {"action": "NONE"}
    assert gw.exchanges() == []  # refused webhook posts logged nothing


def test_endpoints_are_off_without_a_token(gateway: Running) -> None:
    r = post(gateway, GUARDRAIL, guardrail_call())
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_log_webhook_records_become_exchanges(start_gateway: GatewayFactory) -> None:
    gw = litellm_gateway(start_gateway, Action.ALLOW)
    r = post(gw, LOGS, [log_record(1), log_record(2), "not a record"])
    assert r.status_code == 200
    assert r.json() == {"accepted": 2, "skipped": 1, "duplicates": 0}
    logged = sorted(gw.exchanges(), key=lambda e: e.id)
    assert [e.id for e in logged] == ["chatcmpl-0001", "chatcmpl-0002"]
    ex = logged[0]
    assert ex.account_id == "acct-alice"  # the virtual key's hash matched the keys file
    assert ex.api_key_id is not None and ex.api_key_id.startswith("key-")
    assert ex.ts.timestamp() == 1767225601.0 and ex.latency_ms == 250.0
    assert ex.ip == "203.0.113.7" and ex.model == "gpt-3.5-turbo"
    assert ex.endpoint == "/v1/chat/completions" and ex.status == 200
    assert ex.request == {
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": "question number 1"}],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert ex.response_text == "answer 1"
    assert (ex.prompt_tokens, ex.completion_tokens) == (5, 7)
    # LiteLLM resends a batch: nothing is logged twice
    r = post(gw, LOGS, [log_record(2), log_record(3)])
    assert r.json() == {"accepted": 1, "skipped": 0, "duplicates": 1}
    r = post(gw, LOGS, [log_record(4), log_record(4)])  # and within one batch
    assert r.json() == {"accepted": 1, "skipped": 0, "duplicates": 1}
    assert len(gw.exchanges()) == 4
    # recent LiteLLM versions also send the call id (``id`` is the upstream's response id,
    # which need not be unique): the call id, which the guardrail quotes, wins
    both = [log_record(5, litellm_call_id="call-5"), log_record(5, litellm_call_id="call-6")]
    assert post(gw, LOGS, both).json()["accepted"] == 2
    assert {"call-5", "call-6"} <= {e.id for e in gw.exchanges()}


def test_log_webhook_formats_failures_and_bad_bodies(start_gateway: GatewayFactory) -> None:
    gw = litellm_gateway(start_gateway, Action.ALLOW)
    ndjson = b"\n".join(json.dumps(log_record(i)).encode() for i in (1, 2)) + b"\n"
    assert post(gw, LOGS, ndjson, raw=True).json()["accepted"] == 2
    failure = log_record(
        3,
        status="failure",
        response=None,
        startTime="2026-01-01T00:00:03",  # the generic_api page shows ISO times
        endTime="2026-01-01T00:00:04",
        error_information={"error_code": "429", "error_class": "RateLimitError"},
    )
    assert post(gw, LOGS, failure).json()["accepted"] == 1  # log_format: single
    ex = {e.id: e for e in gw.exchanges()}["chatcmpl-0003"]
    assert ex.status == 429 and ex.response_text is None
    assert ex.ts.isoformat() == "2026-01-01T00:00:03+00:00" and ex.latency_ms == 1000.0
    for bad in (b"", b"{not json", b"42"):
        r = post(gw, LOGS, bad, raw=True)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


def test_accounts_from_litellm_ids_when_the_key_is_unknown(start_gateway: GatewayFactory) -> None:
    gw = litellm_gateway(start_gateway, Action.ALLOW, litellm={"account_from": ["key", "team_id"]})
    stranger = "sk-litellm-virtual-key-not-in-the-keys-file"
    post(gw, LOGS, [log_record(1, key=stranger), log_record(2, key=BOB)])
    by_id = {e.id: e for e in gw.exchanges()}
    assert by_id["chatcmpl-0001"].account_id == "team-1"
    assert by_id["chatcmpl-0001"].api_key_id == "litellm-" + key_hash(stranger)[:12]
    assert by_id["chatcmpl-0002"].account_id == "acct-bob"
    assert by_id["chatcmpl-0002"].api_key_id == "bob-ci"
    # no source matches: the record is skipped, the guardrail passes (or blocks, if asked)
    only_keys = litellm_gateway(start_gateway, Action.BLOCK, litellm={"account_from": ["key"]})
    assert post(only_keys, LOGS, [log_record(3, key=stranger)]).json()["skipped"] == 1
    call = guardrail_call(user_api_key_hash=key_hash(stranger))
    assert post(only_keys, GUARDRAIL, call).json() == {"action": "NONE"}
    strict = litellm_gateway(
        start_gateway, Action.ALLOW, litellm={"account_from": ["key"], "unmapped": "block"}
    )
    assert post(strict, GUARDRAIL, call).json()["action"] == "BLOCKED"


def test_block_answers_blocked_with_the_canonical_reason(start_gateway: GatewayFactory) -> None:
    gw = litellm_gateway(start_gateway, Action.BLOCK)
    assert post(gw, GUARDRAIL, guardrail_call()).json() == {"action": "NONE"}  # nothing seen yet
    post(gw, LOGS, [log_record(1)])  # the engine observes it and decides block
    answer = post(gw, GUARDRAIL, guardrail_call()).json()
    assert answer["action"] == "BLOCKED"
    assert "suspended" in answer["blocked_reason"] and "call-0001" in answer["blocked_reason"]
    assert post(gw, GUARDRAIL, guardrail_call("response", ["an answer"])).json()["action"] == (
        "BLOCKED"
    )
    # another account is unaffected
    other = guardrail_call(user_api_key_hash=key_hash(BOB))
    assert post(gw, GUARDRAIL, other).json() == {"action": "NONE"}


def test_throttle_blocks_once_the_budget_is_spent(start_gateway: GatewayFactory) -> None:
    gw = litellm_gateway(
        start_gateway, Action.THROTTLE, throttle={"requests": "2/minute", "tokens": "1000/minute"}
    )
    post(gw, LOGS, [log_record(1)])
    answers = [post(gw, GUARDRAIL, guardrail_call()).json() for _ in range(3)]
    assert [a["action"] for a in answers] == ["NONE", "NONE", "BLOCKED"]
    assert "rate limit" in answers[2]["blocked_reason"].lower()
    # responses are not charged again
    assert post(gw, GUARDRAIL, guardrail_call("response", ["x"])).json() == {"action": "NONE"}


def test_protect_rewrites_response_texts(start_gateway: GatewayFactory) -> None:
    TRANSFORMS["test-litellm-upper"] = lambda: str.upper
    try:
        gw = litellm_gateway(
            start_gateway,
            Action.PROTECT,
            throttle={"requests": "100/minute"},
            protect={"transforms": ["test-litellm-upper"]},
        )
        post(gw, LOGS, [log_record(1)])
        assert post(gw, GUARDRAIL, guardrail_call()).json() == {"action": "NONE"}
        answer = post(gw, GUARDRAIL, guardrail_call("response", ["paris.", "ok"])).json()
        assert answer == {"action": "GUARDRAIL_INTERVENED", "texts": ["PARIS.", "OK"]}
    finally:
        del TRANSFORMS["test-litellm-upper"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"texts": ["x"], "input_type": "sideways"}, "input_type"),
        ({"texts": "x", "input_type": "request"}, "texts"),
        ({"texts": ["x"], "input_type": "request", "request_data": []}, "request_data"),
    ],
)
def test_guardrail_rejects_malformed_calls(
    start_gateway: GatewayFactory, body: dict[str, Any], param: str
) -> None:
    gw = litellm_gateway(start_gateway, Action.ALLOW)
    r = post(gw, GUARDRAIL, body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param
