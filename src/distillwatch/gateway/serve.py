"""Run the gateway under uvicorn (one worker; run several behind a balancer to scale)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from distillwatch.gateway.app import create_app
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.intel_feed import IntelFeed


def serve(
    config: GatewayConfig,
    *,
    log_level: str = "info",
    access_log: bool = False,
    announce: Callable[[], None] | None = None,
    intel: IntelFeed | None = None,
) -> None:
    """Build the app (config problems surface here, before the port opens) and serve it;
    ``intel``: the source the config's ``intel`` section describes (``create_app``)."""
    import uvicorn

    app = create_app(config, intel=intel)
    if announce is not None:
        announce()
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
