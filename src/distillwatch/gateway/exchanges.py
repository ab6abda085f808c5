"""Building the exchange-log record of one request as the gateway sees it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from distillwatch.clock import to_datetime
from distillwatch.gateway.usage import Harvest
from distillwatch.log.checks import valid_ip
from distillwatch.records import Exchange

UNKNOWN_IP = "0.0.0.0"


def new_exchange_id() -> str:
    """A random, unique id; refusals quote it to the client as their support reference.

    >>> len(new_exchange_id()), new_exchange_id().startswith("dw-")
    (27, True)
    """
    return "dw-" + os.urandom(12).hex()


def client_ip(request: Request, trust_forwarded_for: bool) -> str:
    """The client address (first ``X-Forwarded-For`` hop when trusted); always a valid IP."""
    if trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            first = forwarded.split(",", 1)[0].strip()
            if valid_ip(first):
                return first
    host = request.client.host if request.client else None
    return host if host and valid_ip(host) else UNKNOWN_IP


@dataclass
class Draft:
    """What is known of an exchange when its request arrives."""

    id: str
    arrived: float
    started: float
    account_id: str
    api_key_id: str
    ip: str
    user_agent: str | None
    model: str
    endpoint: str
    request: dict[str, Any]

    def finish(self, status: int, harvest: Harvest | None = None) -> Exchange:
        """The spec's exchange record, latency measured up to now."""
        h = harvest or Harvest()
        return Exchange(
            id=self.id,
            ts=to_datetime(self.arrived),
            account_id=self.account_id,
            api_key_id=self.api_key_id,
            ip=self.ip,
            user_agent=self.user_agent,
            model=self.model,
            endpoint=self.endpoint,
            request=self.request,
            response_text=h.text,
            prompt_tokens=h.prompt_tokens,
            completion_tokens=h.completion_tokens,
            reasoning_tokens=h.reasoning_tokens,
            status=status,
            latency_ms=round((time.perf_counter() - self.started) * 1000.0, 3),
        )
