"""The request path: authenticate, check, enforce, forward, log durably, feed the engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from distillwatch.gateway.body import BadBodyError, check_fields, parse_object, read_body
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.durable_log import GroupCommitLog, LogWriteError
from distillwatch.gateway.exchanges import Draft, client_ip, new_exchange_id
from distillwatch.gateway.keys import KeyEntry, KeyRing
from distillwatch.gateway.live import Enforcement, LiveEngine
from distillwatch.gateway.metrics import GatewayMetrics
from distillwatch.gateway.sse import DONE, SSESplitter, decode_json, encode_event, event_data
from distillwatch.gateway.upstream import Upstream, UpstreamError
from distillwatch.gateway.usage import Harvest
from distillwatch.records import Action
from distillwatch.respond import Protector, Throttle
from distillwatch.respond.errors import (
    Refusal,
    bad_gateway,
    blocked,
    gateway_timeout,
    unauthorized,
    unavailable,
)
from distillwatch.respond.protect import StreamProtector
from distillwatch.respond.throttle import ThrottleError

log = logging.getLogger("distillwatch.gateway")

EXCHANGE_HEADER = "x-distillwatch-exchange-id"
STREAMING_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
_DONE_EVENT = b"data: [DONE]\n\n"
_encode = msgspec.json.encode


def refusal_response(refusal: Refusal, exchange_id: str | None = None) -> Response:
    """The canonical error response (every refusal the gateway makes goes through here)."""
    headers = dict(refusal.headers)
    if exchange_id is not None:
        headers[EXCHANGE_HEADER] = exchange_id
    return Response(
        refusal.encode(), status_code=refusal.status, headers=headers, media_type="application/json"
    )


class RefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass
class Plan:
    """How one admitted request is forwarded."""

    draft: Draft
    enforcement: Enforcement
    payload: bytes
    stream: bool
    drop_usage: bool

    @property
    def protect(self) -> bool:
        return self.enforcement.action is Action.PROTECT

    @property
    def throttled(self) -> bool:
        return self.enforcement.action in (Action.THROTTLE, Action.PROTECT)


class Gateway:
    """Everything a request needs; one per app (the lifespan starts and stops its parts)."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        keys: KeyRing,
        upstream: Upstream,
        log: GroupCommitLog,
        live: LiveEngine,
        throttle: Throttle,
        protector: Protector,
        metrics: GatewayMetrics,
    ) -> None:
        self.config = config
        self.keys = keys
        self.upstream = upstream
        self.log = log
        self.live = live
        self.throttle = throttle
        self.protector = protector
        self.metrics = metrics
        self.fail_closed = config.engine.on_error == "closed"

    # entry points

    async def model_call(self, request: Request) -> Response:
        """``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``."""
        endpoint: str = request.scope["path"]
        try:
            plan = await self._admit(request, endpoint)
        except RefusedError as e:
            return self._count(endpoint, refusal_response(e.refusal))
        if isinstance(plan, Response):
            return self._count(endpoint, plan)
        try:
            upstream = await self.upstream.send(
                "POST", endpoint, body=plan.payload, stream=plan.stream
            )
        except UpstreamError as e:
            return self._count(endpoint, await self._refuse(plan.draft, e.refusal))
        if plan.stream and upstream.status == 200 and upstream.content_type == "text/event-stream":
            headers = {EXCHANGE_HEADER: plan.draft.id, "cache-control": "no-cache"}
            self.metrics.count(endpoint, 200)
            return StreamingResponse(
                self._relay(upstream, plan), headers=headers, media_type="text/event-stream"
            )
        try:
            data = await self.upstream.read(upstream)
        except UpstreamError as e:
            return self._count(endpoint, await self._refuse(plan.draft, e.refusal))
        harvest = Harvest()
        if 200 <= upstream.status < 300 and upstream.content_type == "application/json":
            body = decode_json(data)
            if body is not None:
                harvest.from_body(body)
                if plan.protect:
                    data = _encode(self.protector.response(body))
        if not await self._record(plan, upstream.status, harvest):
            return self._count(endpoint, refusal_response(_not_durable(), plan.draft.id))
        response = Response(
            data,
            status_code=upstream.status,
            headers={EXCHANGE_HEADER: plan.draft.id},
            media_type=upstream.content_type or "application/json",
        )
        return self._count(endpoint, response)

    async def forward(self, request: Request) -> Response:
        """``/v1/models`` and configured pass-through paths: authenticated, not logged."""
        try:
            self._authenticate(request)
            raw = await read_body(request, self.config.max_body_bytes)
            upstream = await self.upstream.send(
                request.method,
                request.url.path,
                body=raw or None,
                content_type=request.headers.get("content-type"),
                query=request.url.query,
            )
            data = await self.upstream.read(upstream)
        except (RefusedError, BadBodyError, UpstreamError) as e:
            return self._count(request.url.path, refusal_response(e.refusal))
        response = Response(
            data, status_code=upstream.status, media_type=upstream.content_type or None
        )
        return self._count(request.url.path, response)

    # admission

    def _authenticate(self, request: Request) -> KeyEntry:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise RefusedError(
                unauthorized(
                    "You didn't provide an API key. Send it in the Authorization header "
                    "(Authorization: Bearer YOUR_KEY)."
                )
            )
        entry = self.keys.lookup(key.strip())
        if entry is None:
            raise RefusedError(unauthorized("Incorrect API key provided."))
        return entry

    async def _admit(self, request: Request, endpoint: str) -> Plan | Response:
        arrived, started = time.time(), time.perf_counter()
        entry = self._authenticate(request)
        if self.config.replay_clock:
            arrived = replayed_ts(request.headers.get(REPLAY_TS_HEADER)) or arrived
        try:
            raw = await read_body(request, self.config.max_body_bytes)
            body = parse_object(raw)
            model = check_fields(endpoint, body)
        except BadBodyError as e:
            raise RefusedError(e.refusal) from None
        draft = Draft(
            id=new_exchange_id(),
            arrived=arrived,
            started=started,
            account_id=entry.account_id,
            api_key_id=entry.key_id,
            ip=client_ip(request, self.config.trust_forwarded_for),
            user_agent=request.headers.get("user-agent"),
            model=model,
            endpoint=endpoint,
            request=body,
        )
        enforcement = self.live.decision(entry.account_id)  # O(1): never waits for the engine
        self.metrics.acted(enforcement.action.value, enforcement.source)
        refusal = await self._enforce(enforcement, draft)
        if refusal is not None:
            return await self._refuse(draft, refusal)
        send = body
        if enforcement.action is Action.PROTECT:
            send = self.protector.request(body)
        stream = body.get("stream") is True and endpoint in STREAMING_ENDPOINTS
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        if stream and not wants_usage:  # usage is how a stream's tokens get counted
            send = {**send, "stream_options": {**(options or {}), "include_usage": True}}
        payload = raw if send is body else _encode(send)
        return Plan(draft, enforcement, payload, stream, drop_usage=stream and not wants_usage)

    async def _enforce(self, enforcement: Enforcement, draft: Draft) -> Refusal | None:
        if enforcement.source == "fail-closed":
            return unavailable(
                "Requests from this account cannot be checked right now "
                f"({enforcement.rule}); retry shortly."
            )
        if enforcement.action is Action.BLOCK:
            return blocked(draft.id)
        if enforcement.action in (Action.THROTTLE, Action.PROTECT):
            try:
                return await self.throttle.admit(draft.account_id)
            except ThrottleError as e:
                log.warning("%s", e)
                if self.fail_closed:
                    return unavailable("Rate limits cannot be checked right now; retry shortly.")
        return None

    # completion

    async def _refuse(self, draft: Draft, refusal: Refusal) -> Response:
        """Log a refused exchange (the engine sees refusals too), then answer with it."""
        if refusal.status in (502, 504):
            self.metrics.upstream_errors.labels(refusal.code or "error").inc()
        exchange = draft.finish(refusal.status)
        try:
            await self.log.append(exchange)
        except LogWriteError:
            self.metrics.log_errors.inc()
        self.live.submit(exchange)
        return refusal_response(refusal, draft.id)

    async def _record(self, plan: Plan, status: int, harvest: Harvest) -> bool:
        """Make the exchange durable, then feed the engine; False: it could not be made durable
        and the gateway fails closed (the client must not get an answer the log lacks)."""
        exchange = plan.draft.finish(status, harvest)
        durable = True
        try:
            await self.log.append(exchange)
        except LogWriteError as e:
            self.metrics.log_errors.inc()
            log.error("%s", e)
            durable = False
        self.live.submit(exchange)
        if plan.throttled and harvest.total_tokens:
            try:
                await self.throttle.charge(plan.draft.account_id, harvest.total_tokens)
            except ThrottleError as e:
                log.warning("%s", e)
        return durable or not self.fail_closed

    async def _relay(self, upstream: aiohttp.ClientResponse, plan: Plan) -> AsyncIterator[bytes]:
        """Pass a stream through event by event; hold ``[DONE]`` until the exchange is durable."""
        splitter = SSESplitter()
        harvest = Harvest()
        guard: StreamProtector | None = self.protector.stream() if plan.protect else None
        done = False
        status = 200
        recorded = False
        try:
            try:
                async for data in upstream.content.iter_any():
                    for event in splitter.feed(data):
                        out = self._event(event, harvest, guard, plan.drop_usage)
                        if out is DONE:
                            done = True
                        elif out:
                            yield out
            except (TimeoutError, aiohttp.ClientError) as e:
                refusal = (
                    gateway_timeout(self.upstream.timeout_s)
                    if isinstance(e, TimeoutError)
                    else bad_gateway("The upstream model server failed mid-stream.")
                )
                self.metrics.upstream_errors.labels(refusal.code or "error").inc()
                status = refusal.status
                yield encode_event(refusal.body())
            finally:
                upstream.release()
            rest = splitter.rest()
            if rest.strip():
                yield rest + b"\n\n"
            harvest.finish()
            recorded = True
            if not await self._record(plan, status, harvest):
                yield encode_event(_not_durable().body())
                return
            if done:
                yield _DONE_EVENT
        finally:
            if not recorded:  # the client went away mid-stream: log what it got, best effort
                harvest.finish()
                task = asyncio.get_running_loop().create_task(self._record(plan, 499, harvest))
                task.add_done_callback(_ignore_result)

    def _event(
        self, event: bytes, harvest: Harvest, guard: StreamProtector | None, drop_usage: bool
    ) -> bytes | None:
        payload = event_data(event)
        if payload is None:
            return event
        if payload.strip() == DONE:
            return DONE
        chunk = decode_json(payload)
        if chunk is None:
            return event
        harvest.from_chunk(chunk)
        if drop_usage and chunk.get("usage") and not chunk.get("choices"):
            return None  # the usage chunk the gateway asked for, not the client
        if guard is not None:
            return encode_event(guard.chunk(chunk))
        return event

    def _count(self, endpoint: str, response: Response) -> Response:
        self.metrics.count(endpoint, response.status_code)
        return response


REPLAY_TS_HEADER = "x-distillwatch-replay-ts"


def replayed_ts(value: str | None) -> float | None:
    """The replayed request's logged time (RFC 3339), or None when absent or unreadable.

    >>> replayed_ts("2026-03-02T00:00:09.5Z"), replayed_ts("noon"), replayed_ts(None)
    (1772409609.5, None, None)
    """
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo is not None else None


def _not_durable() -> Refusal:
    return unavailable("The request could not be recorded; it was not answered. Retry shortly.")


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
