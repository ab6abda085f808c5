"""Fixtures: a fake upstream and a gateway in front of it, both on loopback sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from distillwatch.gateway import create_app, load_config
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.durable_log import read_segments
from distillwatch.records import Exchange
from tests.gateway.fake_upstream import create_fake_upstream, serve_in_thread

KEYS = {
    "sk-test-alice-000001": "acct-alice",
    "sk-test-bob-00000001": {"account_id": "acct-bob", "tier": "enterprise", "key_id": "bob-ci"},
}
ALICE = "sk-test-alice-000001"
BOB = "sk-test-bob-00000001"


@dataclass
class Upstream:
    url: str
    app: Starlette

    @property
    def received(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.app.state.received
        return out


@dataclass
class Running:
    """A gateway serving on loopback: its URL, its app and its log folder."""

    url: str
    app: Starlette
    log_dir: Path
    config: GatewayConfig

    def exchanges(self) -> list[Exchange]:
        return list(read_segments(self.log_dir))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    app = create_fake_upstream()
    with serve_in_thread(app) as url:
        yield Upstream(url + "/v1", app)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "keys.json"
    path.write_text(json.dumps(KEYS), encoding="utf-8")
    return path


class GatewayFactory:
    """``start(**config)`` serves a gateway with that config; ``stop(gw)`` ends it early."""

    def __init__(self, upstream: Upstream, keys_file: Path, tmp_path: Path) -> None:
        self.upstream, self.keys_file, self.tmp_path = upstream, keys_file, tmp_path
        self.running: list[tuple[Running, Any]] = []
        self.started = 0

    def __call__(
        self, app_factory: Callable[[GatewayConfig], Starlette] | None = None, **fields: Any
    ) -> Running:
        self.started += 1
        data: dict[str, Any] = {
            "upstream": self.upstream.url,
            "keys": str(self.keys_file),
            "log": {"dir": str(self.tmp_path / f"log-{self.started}")},
        }
        data.update(fields)
        config = load_config(None, **data)
        app = (app_factory or create_app)(config)
        ctx = serve_in_thread(app)
        gw = Running(ctx.__enter__(), app, config.log.dir, config)
        self.running.append((gw, ctx))
        return gw

    def stop(self, gw: Running) -> None:
        for i, (g, ctx) in enumerate(self.running):
            if g is gw:
                del self.running[i]
                ctx.__exit__(None, None, None)
                return

    def close(self) -> None:
        while self.running:
            self.stop(self.running[-1][0])


@pytest.fixture
def start_gateway(upstream: Upstream, keys_file: Path, tmp_path: Path) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(upstream, keys_file, tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> Running:
    return start_gateway()
