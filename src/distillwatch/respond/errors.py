"""The one error body every refusal uses, in OpenAI's shape.

OpenAI-compatible clients (the official SDKs among them) read ``error.message``,
``error.type``, ``error.param`` and ``error.code``; every refusal the gateway makes — bad
key, bad body, throttle, block, upstream failure — is built here so they all agree.

>>> error_body("Bad key.", type="authentication_error", code="invalid_api_key")["error"]
{'message': 'Bad key.', 'type': 'authentication_error', 'param': None, 'code': 'invalid_api_key'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, exactly OpenAI's keys."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class Refusal:
    """A request the gateway answers itself, with an HTTP status and the canonical body."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)

    def encode(self) -> bytes:
        """The body as JSON bytes.

        >>> Refusal(413, "too big", "invalid_request_error", "body_too_large").encode()[:30]
        b'{"error":{"message":"too big",'
        """
        return _encode(self.body())


# The refusals the gateway makes, by situation; each takes the detail the client needs.


def bad_request(message: str, *, param: str | None = None) -> Refusal:
    return Refusal(400, message, "invalid_request_error", "invalid_request", param)


def unauthorized(message: str) -> Refusal:
    return Refusal(401, message, "authentication_error", "invalid_api_key")


def blocked(reference: str) -> Refusal:
    return Refusal(
        403,
        "This account's access to the API has been suspended. If you believe this is a "
        f"mistake, contact support and quote reference {reference}.",
        "permission_error",
        "account_blocked",
        headers={"x-distillwatch-reference": reference},
    )


def not_found(path: str) -> Refusal:
    return Refusal(404, f"Unknown request URL: {path}.", "invalid_request_error", "unknown_url")


def method_not_allowed(method: str, path: str) -> Refusal:
    return Refusal(
        405,
        f"Method {method} not allowed on {path}.",
        "invalid_request_error",
        "method_not_allowed",
    )


def too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        f"Request body too large: the limit is {limit} bytes.",
        "invalid_request_error",
        "request_too_large",
    )


def rate_limited(message: str, retry_after_s: int) -> Refusal:
    return Refusal(
        429,
        message,
        "rate_limit_error",
        "rate_limit_exceeded",
        headers={"retry-after": str(max(1, retry_after_s))},
    )


def bad_gateway(message: str) -> Refusal:
    return Refusal(502, message, "upstream_error", "upstream_unavailable")


def unavailable(message: str) -> Refusal:
    return Refusal(503, message, "server_error", "decision_unavailable")


def gateway_timeout(timeout_s: float) -> Refusal:
    return Refusal(
        504,
        f"The upstream model server did not answer within {timeout_s:g} s.",
        "upstream_error",
        "upstream_timeout",
    )


def internal_error(reference: str) -> Refusal:
    return Refusal(
        500,
        f"The gateway failed to handle the request (reference {reference}).",
        "server_error",
        "internal_error",
    )
