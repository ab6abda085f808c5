"""LiteLLM as a front end: its Generic Guardrail API and its ``generic_api`` log webhook.

Users who already run LiteLLM's proxy keep it and point two of its hooks at the gateway
(no ``litellm`` package needed here; both follow LiteLLM's documented contracts):

- ``POST /litellm/beta/litellm_basic_guardrail_api`` — the Generic Guardrail API
  (``guardrail: generic_guardrail_api``, ``api_base: http://<gateway>/litellm``; LiteLLM
  appends the path). LiteLLM posts the call's ``texts``, ``input_type`` (``request`` or
  ``response``) and the virtual key's ids in ``request_data``; the answer is the account's
  current decision: ``BLOCKED`` with the canonical refusal message and a support reference
  (block, or a throttle budget spent), ``GUARDRAIL_INTERVENED`` with the output transforms
  applied to the response texts (protect), else ``NONE``.
- ``POST /litellm/logs`` — the ``generic_api`` logging callback (``callback_type:
  generic_api``, ``endpoint: http://<gateway>/litellm/logs``): every
  ``StandardLoggingPayload`` (a JSON array, NDJSON or one object) becomes an exchange in
  the spec's format, made durable in the log, then fed to the engine.

Both need ``Authorization: Bearer <litellm.token>`` (or ``x-api-key: <token>``). The account
is found from ``litellm.account_from``: ``key`` matches ``user_api_key_hash`` (LiteLLM's
SHA-256 of the virtual key) against the keys file; ``user_id``, ``team_id``,
``end_user_id``, ``org_id``, ``key_alias`` use that LiteLLM id as the account id.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillwatch.clock import to_datetime
from distillwatch.gateway.body import BadBodyError, parse_object, read_body
from distillwatch.gateway.config import AccountSource, LiteLLMSettings
from distillwatch.gateway.exchanges import UNKNOWN_IP, new_exchange_id
from distillwatch.gateway.keys import KeyRing
from distillwatch.gateway.proxy import Gateway, refusal_response
from distillwatch.gateway.usage import Harvest
from distillwatch.log.checks import valid_ip
from distillwatch.records import Action, Exchange
from distillwatch.respond.errors import Refusal, bad_request, blocked, unauthorized, unavailable
from distillwatch.respond.throttle import ThrottleError

log = logging.getLogger("distillwatch.gateway")

GUARDRAIL_PATH = "/litellm/beta/litellm_basic_guardrail_api"
LOGS_PATH = "/litellm/logs"

_ID_FIELDS: dict[str, str] = {
    "user_id": "user_api_key_user_id",
    "team_id": "user_api_key_team_id",
    "end_user_id": "user_api_key_end_user_id",
    "org_id": "user_api_key_org_id",
    "key_alias": "user_api_key_alias",
}
_ENDPOINTS = {
    "completion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "embedding": "/v1/embeddings",
    "responses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
}
_SEEN_MAX = 1 << 16  # payload ids remembered, to drop LiteLLM's retried batches


@dataclass(frozen=True)
class Caller:
    """The distillwatch account behind a LiteLLM call."""

    account_id: str
    api_key_id: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def resolve(
    meta: Mapping[str, Any], keys: KeyRing, sources: Sequence[AccountSource]
) -> Caller | None:
    """The account for LiteLLM's key metadata, trying ``sources`` in order.

    >>> import hashlib
    >>> from distillwatch.gateway.keys import KeyEntry
    >>> ring = KeyRing({"sk-live-1234": KeyEntry("acct-a", "key-a")})
    >>> h = hashlib.sha256(b"sk-live-1234").hexdigest()
    >>> resolve({"user_api_key_hash": h, "user_api_key_team_id": "t1"}, ring, ["key", "team_id"])
    Caller(account_id='acct-a', api_key_id='key-a')
    >>> resolve({"user_api_key_hash": "ff" * 32, "user_api_key_team_id": "t1"}, ring,
    ...         ["key", "team_id"])
    Caller(account_id='t1', api_key_id='litellm-ffffffffffff')
    >>> resolve({}, ring, ["key", "user_id"]) is None
    True
    """
    key_hash = _text(meta.get("user_api_key_hash"))
    entry = keys.lookup_hash(key_hash) if key_hash else None
    key_id = entry.key_id if entry else (f"litellm-{key_hash[:12]}" if key_hash else None)
    for source in sources:
        if source == "key":
            if entry is not None:
                return Caller(entry.account_id, entry.key_id)
            continue
        value = _text(meta.get(_ID_FIELDS[source]))
        if value is not None:
            return Caller(value.strip(), key_id)
    return None


# the guardrail


def guardrail_answer(
    action: str, *, reason: str | None = None, texts: list[str] | None = None
) -> dict[str, Any]:
    """The contract's response: ``{"action": "NONE" | "BLOCKED" | "GUARDRAIL_INTERVENED", ...}``.

    >>> guardrail_answer("BLOCKED", reason="no")
    {'action': 'BLOCKED', 'blocked_reason': 'no'}
    """
    out: dict[str, Any] = {"action": action}
    if reason is not None:
        out["blocked_reason"] = reason
    if texts is not None:
        out["texts"] = texts
    return out


def _guardrail_request(body: dict[str, Any]) -> tuple[str, list[str], dict[str, Any]]:
    """``input_type``, ``texts`` and ``request_data`` of a guardrail call, checked."""
    input_type = body.get("input_type")
    if input_type not in ("request", "response"):
        raise BadBodyError(
            bad_request("'input_type' must be 'request' or 'response'.", param="input_type")
        )
    texts = body.get("texts")
    if texts is None:
        texts = []
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise BadBodyError(bad_request("'texts' must be a list of strings.", param="texts"))
    meta = body.get("request_data")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise BadBodyError(bad_request("'request_data' must be an object.", param="request_data"))
    return input_type, texts, meta


class LiteLLMAdapter:
    """The two endpoints, on top of the gateway's parts (keys, engine, log, throttle)."""

    def __init__(self, settings: LiteLLMSettings, gateway: Callable[[], Gateway]) -> None:
        assert settings.token is not None
        self.settings = settings
        self._gateway = gateway
        self._expected = settings.token.encode()
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def gw(self) -> Gateway:
        return self._gateway()

    def routes(self) -> list[Route]:
        return [
            Route(GUARDRAIL_PATH, self.guardrail, methods=["POST"]),
            Route(LOGS_PATH, self.logs, methods=["POST"]),
        ]

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = request.headers.get("x-api-key", "")
        return hmac.compare_digest(token.strip().encode(), self._expected)

    def _refuse(self, path: str, refusal: Refusal) -> Response:
        self.gw.metrics.requests.labels(path, str(refusal.status)).inc()
        return refusal_response(refusal)

    def _json(self, path: str, data: Any) -> Response:
        self.gw.metrics.requests.labels(path, "200").inc()
        return Response(msgspec.json.encode(data), media_type="application/json")

    async def guardrail(self, request: Request) -> Response:
        """LiteLLM asks: may this call go on (request), may this answer go out (response)?"""
        if not self._authorized(request):
            return self._refuse(GUARDRAIL_PATH, unauthorized("LiteLLM token missing or wrong."))
        try:
            body = parse_object(await read_body(request, self.settings.max_body_bytes))
            input_type, texts, meta = _guardrail_request(body)
        except BadBodyError as e:
            return self._refuse(GUARDRAIL_PATH, e.refusal)
        reference = _text(body.get("litellm_call_id")) or new_exchange_id()
        caller = resolve(meta, self.gw.keys, self.settings.account_from)
        if caller is None:
            if self.settings.unmapped == "block":
                answer = guardrail_answer("BLOCKED", reason=blocked(reference).message)
            else:
                answer = guardrail_answer("NONE")
            return self._json(GUARDRAIL_PATH, answer)
        answer = await self._decide(caller.account_id, input_type, texts, reference)
        return self._json(GUARDRAIL_PATH, answer)

    async def _decide(
        self, account_id: str, input_type: str, texts: list[str], reference: str
    ) -> dict[str, Any]:
        gw = self.gw
        enforcement = gw.live.decision(account_id)
        gw.metrics.acted(enforcement.action.value, enforcement.source)
        if enforcement.source == "fail-closed":
            refusal = unavailable(
                f"Requests from this account cannot be checked right now ({enforcement.rule}); "
                f"retry shortly (reference {reference})."
            )
            return guardrail_answer("BLOCKED", reason=refusal.message)
        action = enforcement.action
        if action is Action.BLOCK:
            return guardrail_answer("BLOCKED", reason=blocked(reference).message)
        if action in (Action.THROTTLE, Action.PROTECT) and input_type == "request":
            try:
                limited = await gw.throttle.admit(account_id)
            except ThrottleError as e:
                log.warning("%s", e)
                limited = (
                    unavailable("Rate limits cannot be checked right now; retry shortly.")
                    if gw.fail_closed
                    else None
                )
            if limited is not None:
                return guardrail_answer("BLOCKED", reason=limited.message)
        if action is Action.PROTECT and input_type == "response" and texts:
            changed = [gw.protector.text(t) for t in texts]
            if changed != texts:
                return guardrail_answer("GUARDRAIL_INTERVENED", texts=changed)
        return guardrail_answer("NONE")

    # the log webhook

    async def logs(self, request: Request) -> Response:
        """Take a batch of ``StandardLoggingPayload``s: log each durably, then feed the engine."""
        if not self._authorized(request):
            return self._refuse(LOGS_PATH, unauthorized("LiteLLM token missing or wrong."))
        try:
            records = parse_payloads(await read_body(request, self.settings.max_body_bytes))
        except BadBodyError as e:
            return self._refuse(LOGS_PATH, e.refusal)
        gw = self.gw
        fresh: list[Exchange] = []
        batch_ids: set[str] = set()
        skipped = duplicates = 0
        for record in records:
            exchange = (
                to_exchange(record, gw.keys, self.settings.account_from)
                if isinstance(record, dict)
                else None
            )
            if exchange is None:
                skipped += 1
            elif exchange.id in self._seen or exchange.id in batch_ids:
                duplicates += 1
            else:
                fresh.append(exchange)
                batch_ids.add(exchange.id)
        fresh.sort(key=lambda e: e.ts)
        results = await asyncio.gather(*(gw.log.append(e) for e in fresh), return_exceptions=True)
        failed = 0
        for exchange, result in zip(fresh, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                gw.metrics.log_errors.inc()
                log.error("LiteLLM log record %s not logged: %s", exchange.id, result)
                continue
            self._remember(exchange.id)
            gw.live.submit(exchange)
            await self._charge(exchange)
        if failed:
            return self._refuse(
                LOGS_PATH,
                unavailable(f"{failed} of {len(fresh)} records could not be logged; resend."),
            )
        summary = {"accepted": len(fresh), "skipped": skipped, "duplicates": duplicates}
        return self._json(LOGS_PATH, summary)

    def _remember(self, exchange_id: str) -> None:
        self._seen[exchange_id] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)

    async def _charge(self, exchange: Exchange) -> None:
        """Throttled accounts' tokens count against their budgets, as through the proxy."""
        tokens = (exchange.prompt_tokens or 0) + (exchange.completion_tokens or 0)
        st = self.gw.live.engine.states.get(exchange.account_id)
        decision = st.decision if st is not None else None
        if not tokens or decision is None:
            return
        if decision.action in (Action.THROTTLE, Action.PROTECT):
            try:
                await self.gw.throttle.charge(exchange.account_id, tokens)
            except ThrottleError as e:
                log.warning("%s", e)


def parse_payloads(raw: bytes) -> list[Any]:
    """The webhook body as records: a JSON array (LiteLLM's default), NDJSON, or one object.

    >>> parse_payloads(b'[{"id": "a"}, {"id": "b"}]')
    [{'id': 'a'}, {'id': 'b'}]
    >>> parse_payloads(b'{"id": "a"}\\n{"id": "b"}\\n')
    [{'id': 'a'}, {'id': 'b'}]
    """
    if not raw.strip():
        raise BadBodyError(bad_request("The request body is empty: send log records."))
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        lines = [line for line in raw.splitlines() if line.strip()]
        try:
            return [msgspec.json.decode(line) for line in lines]
        except msgspec.DecodeError as e:
            raise BadBodyError(
                bad_request(f"The body is neither JSON nor NDJSON log records: {e}.")
            ) from None
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise BadBodyError(bad_request("Log records must be JSON objects."))


def _time(value: Any) -> float | None:
    """Seconds since the epoch from LiteLLM's ``startTime``/``endTime`` (number or ISO)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return None


def _status(payload: Mapping[str, Any]) -> int:
    if payload.get("status") != "failure":
        return 200
    info = payload.get("error_information")
    code = info.get("error_code") if isinstance(info, dict) else None
    try:
        status = int(code) if code is not None else 500
    except (TypeError, ValueError):
        status = 500
    return status if 100 <= status <= 599 else 500


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _request(payload: Mapping[str, Any], model: str, endpoint: str | None) -> dict[str, Any] | None:
    messages = payload.get("messages")
    if messages is None:
        return None
    body: dict[str, Any] = {"model": model}
    if endpoint == "/v1/embeddings":
        body["input"] = messages
    elif isinstance(messages, list):
        body["messages"] = messages
    elif isinstance(messages, str):
        body["prompt"] = messages
    elif isinstance(messages, dict):
        body.update(messages)
    params = payload.get("model_parameters")
    if isinstance(params, dict):
        for key, value in params.items():
            body.setdefault(key, value)
    return body


def to_exchange(
    payload: Mapping[str, Any], keys: KeyRing, sources: Sequence[AccountSource]
) -> Exchange | None:
    """One ``StandardLoggingPayload`` as a spec exchange; None when no account is found.

    >>> ex = to_exchange({"id": "c1", "startTime": 1767225600.0, "endTime": 1767225601.5,
    ...     "model": "gpt-4o", "call_type": "acompletion", "status": "success",
    ...     "messages": [{"role": "user", "content": "hi"}], "prompt_tokens": 3,
    ...     "completion_tokens": 2, "response": {"choices": [{"message": {"content": "yo"}}]},
    ...     "metadata": {"user_api_key_team_id": "team-1"}}, KeyRing({}), ["team_id"])
    >>> ex.account_id, ex.endpoint, ex.response_text, ex.status, ex.latency_ms
    ('team-1', '/v1/chat/completions', 'yo', 200, 1500.0)
    """
    meta = payload.get("metadata")
    ids: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    if _text(payload.get("end_user")) and not _text(ids.get("user_api_key_end_user_id")):
        ids["user_api_key_end_user_id"] = payload["end_user"]
    caller = resolve(ids, keys, sources)
    if caller is None:
        return None
    call_type = str(payload.get("call_type") or "").removeprefix("litellm.")
    endpoint = _ENDPOINTS.get(call_type.removeprefix("a")) or _ENDPOINTS.get(call_type)
    hidden = payload.get("hidden_params")
    model = (
        _text(payload.get("model"))
        or _text(payload.get("model_group"))
        or (_text(hidden.get("litellm_model_name")) if isinstance(hidden, dict) else None)
        or "unknown"
    )
    start = _time(payload.get("startTime"))
    end = _time(payload.get("endTime"))
    latency = round((end - start) * 1000.0, 3) if start is not None and end is not None else None
    harvest = Harvest()
    response = payload.get("response")
    if isinstance(response, dict):
        harvest.from_body(response)
    elif isinstance(response, str):
        harvest.text = response
    ip = _text(payload.get("requester_ip_address")) or _text(ids.get("requester_ip_address"))
    prompt_tokens = _count(payload.get("prompt_tokens"))
    completion_tokens = _count(payload.get("completion_tokens"))
    return Exchange(
        id=_text(payload.get("litellm_call_id")) or _text(payload.get("id")) or new_exchange_id(),
        ts=to_datetime(start if start is not None else time.time()),
        account_id=caller.account_id,
        api_key_id=caller.api_key_id,
        ip=ip if ip is not None and valid_ip(ip) else UNKNOWN_IP,
        model=model,
        endpoint=endpoint,
        request=_request(payload, model, endpoint),
        response_text=harvest.text,
        prompt_tokens=prompt_tokens if prompt_tokens is not None else harvest.prompt_tokens,
        completion_tokens=(
            completion_tokens if completion_tokens is not None else harvest.completion_tokens
        ),
        reasoning_tokens=harvest.reasoning_tokens,
        status=_status(payload),
        latency_ms=max(latency, 0.0) if latency is not None else None,
    )


def litellm_routes(settings: LiteLLMSettings, gateway: Callable[[], Gateway]) -> list[Route]:
    """The ``/litellm`` routes (only when ``litellm.token`` is set)."""
    return LiteLLMAdapter(settings, gateway).routes()
