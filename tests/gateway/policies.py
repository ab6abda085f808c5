"""Engines whose decisions tests choose (a policy that always answers the same)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette

from distillwatch.detect import Engine
from distillwatch.gateway import create_app
from distillwatch.gateway.config import GatewayConfig
from distillwatch.records import Action, PolicyRef


class FixedPolicy:
    """Decides ``action`` for every account (or raises / sleeps, to test failure modes)."""

    name = "fixed"
    hash = "0" * 16

    def __init__(self, action: Action, *, fail: bool = False, sleep_s: float = 0.0) -> None:
        self.action = action
        self.fail = fail
        self.sleep_s = sleep_s

    def decide(
        self, score: float, *, tier: str | None, exchanges: int, campaign: bool = False
    ) -> tuple[Action, str]:
        if self.fail:
            raise RuntimeError("policy exploded")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return self.action, f"fixed.{self.action.value}"

    def ref(self, rule: str) -> PolicyRef:
        return PolicyRef(name=self.name, version=1, hash=self.hash, rule=rule)


def fixed_app(action: Action, **kw: bool | float) -> Callable[[GatewayConfig], Starlette]:
    def build(config: GatewayConfig) -> Starlette:
        return create_app(config, engine=Engine([], FixedPolicy(action, **kw)))  # type: ignore[arg-type]

    return build
