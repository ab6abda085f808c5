"""The gateway: an OpenAI-compatible proxy that logs, scores and enforces in line.

``create_app(load_config(path))`` builds the ASGI app; ``serve`` runs it under uvicorn.
"""

from distillwatch.gateway.app import create_app
from distillwatch.gateway.config import GatewayConfig, load_config

__all__ = ["GatewayConfig", "create_app", "load_config"]
