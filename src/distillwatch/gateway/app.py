"""Assemble the gateway's ASGI app from a config: parts, routes, lifespan, error shapes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillwatch.attribute.factory import build_engine as attribute_engine
from distillwatch.detect import Engine
from distillwatch.detect.engine import Linker
from distillwatch.gateway import intel_feed
from distillwatch.gateway.admin import admin_routes
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.durable_log import GroupCommitLog, SegmentSink, Sink, StoreSink
from distillwatch.gateway.intel_feed import IntelFeed
from distillwatch.gateway.keys import KeyRing, load_keys
from distillwatch.gateway.live import LiveEngine
from distillwatch.gateway.metrics import GatewayMetrics
from distillwatch.gateway.openapi import openapi
from distillwatch.gateway.pg_keys import load_pg_keys, refresh_forever
from distillwatch.gateway.proxy import Gateway, refusal_response
from distillwatch.gateway.restore import restore_engine
from distillwatch.gateway.upstream import Upstream
from distillwatch.log import read_accounts
from distillwatch.policy import load_policy
from distillwatch.respond import Protector, Throttle
from distillwatch.respond.errors import internal_error, method_not_allowed, not_found
from distillwatch.signals import create_signals

log = logging.getLogger("distillwatch.gateway")

MODEL_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def build_engine(config: GatewayConfig, keys: KeyRing, linker: Linker | None = None) -> Engine:
    """The same engine ``scan`` uses, with accounts from the keys and accounts files
    (and, with ``engine.campaigns``, the same campaign linker)."""
    accounts = keys.accounts()
    if config.engine.accounts is not None:
        accounts.update(read_accounts(config.engine.accounts))
    policy = load_policy(config.engine.policy)
    if linker is None:
        return attribute_engine(policy, accounts, campaigns=config.engine.campaigns)
    return Engine(create_signals(), policy, accounts, linker=linker)


def open_sink(config: GatewayConfig) -> Sink:
    if config.log.store is not None:
        from distillwatch.store import open_store

        return StoreSink(open_store(config.log.store))
    return SegmentSink(
        config.log.dir, segment_bytes=config.log.segment_bytes, fsync=config.log.fsync
    )


def create_app(
    config: GatewayConfig,
    *,
    keys: KeyRing | None = None,
    engine: Engine | None = None,
    linker: Linker | None = None,
    intel: IntelFeed | None = None,
) -> Starlette:
    """The gateway app. ``keys``/``engine`` default to the ones the config describes;
    ``linker`` (campaign attribution) feeds the engine and the per-campaign limits;
    ``intel`` (the config's ``intel`` section, built by ``distillwatch serve``) matches
    received intel in the engine. ``app.state.refresh_intel()`` looks for new intel now,
    ``app.state.pull_intel()`` pulls from TAXII now, ``app.state.report_sightings()`` sends
    the sightings of the matches made since the last report now."""
    from distillwatch.errors import ConfigError

    if (config.intel is None) != (intel is None):
        raise ConfigError(
            "`intel`: the section and the intel feed go together (`distillwatch serve` "
            "builds the feed from the section)"
        )
    if keys is None:
        if config.keys is not None and config.keys_store is not None:
            raise ConfigError("set either `keys` (a file) or `keys_store` (PostgreSQL), not both")
        if config.keys_store is not None:
            keys = load_pg_keys(config.keys_store)
        elif config.keys is None:
            raise ConfigError(
                "no API keys: set `keys` (a file) or `keys_store` (PostgreSQL) in the config, "
                "or pass --keys"
            )
        else:
            keys = load_keys(config.keys)
    engine = engine or build_engine(config, keys, linker)
    if intel is not None:
        intel.attach(engine)  # after the campaign linker, as scan --intel
    metrics = GatewayMetrics()
    live = LiveEngine(
        engine,
        on_error=config.engine.on_error,
        budget_s=config.engine.decision_budget_ms / 1000.0,
        on_observe=metrics.observed,
        on_lag=metrics.lagged,
        overrides_path=config.admin.overrides or config.log.dir / "overrides.json",
    )
    upstream = Upstream(
        config.upstream_base,
        api_key=config.upstream_api_key,
        timeout_s=config.upstream_timeout_s,
        connect_timeout_s=config.connect_timeout_s,
    )
    campaign_of = engine.linker.campaign_of if engine.linker is not None else None

    known = {**keys.accounts(), **engine.accounts}  # the accounts file refines the keys file

    def tier_of(account_id: str) -> str | None:
        account = known.get(account_id)
        return account.tier if account is not None else None

    state: dict[str, Gateway] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sink = open_sink(config)  # first: opening the segments repairs torn tails
        if intel is not None:  # before the restore: restored decisions see the intel too
            await intel_feed.refresh(intel)
        if config.engine.restore:
            store = sink.store if isinstance(sink, StoreSink) else None
            await asyncio.to_thread(restore_engine, engine, config, store)
        commit_log = GroupCommitLog(
            sink, batch_max=config.log.batch_max, on_commit=metrics.committed
        )
        throttle = Throttle(config.throttle, campaign_of, tier_of=tier_of)
        gateway = Gateway(
            config,
            keys=keys,
            upstream=upstream,
            log=commit_log,
            live=live,
            throttle=throttle,
            protector=Protector(config.protect),
            metrics=metrics,
        )
        metrics.track_queues(lambda: commit_log.depth, lambda: live.depth)
        state["gateway"] = gateway
        await upstream.start()
        commit_log.start()
        live.start()
        refresher = None
        if config.keys_store is not None and config.keys_store.refresh_s > 0:
            refresher = asyncio.create_task(refresh_forever(keys, config.keys_store))
        intel_tasks = []
        if intel is not None and config.intel is not None:
            if config.intel.refresh_s > 0:
                intel_tasks.append(intel_feed.refresh_forever(intel, config.intel.refresh_s))
            if config.intel.taxii is not None:  # at once, then every pull_s
                intel_tasks.append(intel_feed.pull_forever(intel, config.intel.taxii.pull_s))
            if config.intel.member is not None:
                every = config.intel.sightings_every_s
                intel_tasks.append(intel_feed.report_forever(intel, every))
        tasks = [refresher, *(asyncio.create_task(t) for t in intel_tasks)]
        try:
            yield
        finally:
            for task in tasks:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await live.close()
            await commit_log.close()
            await upstream.close()
            await throttle.close()

    async def model_call(request: Request) -> Response:
        return await state["gateway"].model_call(request)

    async def forward(request: Request) -> Response:
        return await state["gateway"].forward(request)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    spec = msgspec.json.encode(openapi())

    async def openapi_endpoint(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    routes = [Route(p, model_call, methods=["POST"]) for p in MODEL_ENDPOINTS]
    routes.append(Route("/v1/models", forward, methods=["GET"]))
    routes.append(Route("/v1/models/{model:path}", forward, methods=["GET"]))
    routes += [Route(p, forward, methods=["GET", "POST", "DELETE"]) for p in config.passthrough]
    routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    routes.append(Route("/healthz", health, methods=["GET"]))
    routes.append(Route("/openapi.json", openapi_endpoint, methods=["GET"]))
    if config.admin.token is not None:
        routes += admin_routes(config, live, config.admin.token)
    if config.litellm.token is not None:
        from distillwatch.gateway.litellm import litellm_routes

        routes += litellm_routes(config.litellm, lambda: state["gateway"])

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            response = refusal_response(method_not_allowed(request.method, request.url.path))
            response.headers.update(exc.headers or {})  # Allow: the methods that are
            return response
        return refusal_response(not_found(request.url.path))

    async def server_error(request: Request, exc: Exception) -> Response:
        from distillwatch.gateway.exchanges import new_exchange_id

        reference = new_exchange_id()
        log.error("unhandled error, reference %s", reference, exc_info=exc)
        return refusal_response(internal_error(reference))

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )

    async def refresh_intel() -> bool:
        return intel is not None and await intel_feed.refresh(intel)

    async def pull_intel() -> bool:
        return intel is not None and await intel_feed.pull(intel)

    async def report_sightings() -> bool:
        return intel is not None and await intel_feed.report(intel)

    app.state.refresh_intel = refresh_intel
    app.state.pull_intel = pull_intel
    app.state.report_sightings = report_sightings
    return app
