"""Reading and checking request bodies: size limit, JSON object, the types of known fields.

Only what the gateway relies on, or what would make the upstream fail obscurely, is
checked; other fields pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.requests import Request

from distillwatch.respond.errors import Refusal, bad_request, too_large


class BadBodyError(Exception):
    """A request body the gateway answers with ``refusal`` (400 or 413)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BadBodyError(too_large(limit))
        except ValueError:
            raise BadBodyError(bad_request("Invalid Content-Length header.")) from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadBodyError(too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong with it."""
    if not raw.strip():
        raise BadBodyError(bad_request("The request body is empty: send a JSON object."))
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise BadBodyError(bad_request(f"The request body is not valid JSON: {e}.")) from None
    if not isinstance(value, dict):
        raise BadBodyError(bad_request("The request body must be a JSON object."))
    return value


Check = Callable[[Any], bool]


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _list(v: Any) -> bool:
    return isinstance(v, list)


def _obj(v: Any) -> bool:
    return isinstance(v, dict)


def _str_or_list(v: Any) -> bool:
    return isinstance(v, str | list)


def _messages(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) > 0
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str | list | None)
            for m in v
        )
    )


_COMMON: dict[str, tuple[Check, str]] = {
    "stream": (_bool, "a boolean"),
    "n": (lambda v: _int(v) and v >= 1, "an integer of at least 1"),
    "max_tokens": (lambda v: _int(v) and v >= 0, "a non-negative integer"),
    "temperature": (_num, "a number"),
    "top_p": (_num, "a number"),
    "presence_penalty": (_num, "a number"),
    "frequency_penalty": (_num, "a number"),
    "seed": (_int, "an integer"),
    "stop": (lambda v: isinstance(v, str) or (_list(v) and all(map(_str, v))), "a string or list"),
    "user": (_str, "a string"),
    "stream_options": (_obj, "an object"),
}
_ENDPOINT: dict[str, dict[str, tuple[Check, str]]] = {
    "/v1/chat/completions": {
        "messages": (
            _messages,
            "a non-empty list of message objects, each with a role (content: text, parts or null)",
        ),
        "max_completion_tokens": (lambda v: _int(v) and v >= 0, "a non-negative integer"),
        "logprobs": (_bool, "a boolean"),
        "top_logprobs": (_int, "an integer"),
        "tools": (lambda v: _list(v) and all(map(_obj, v)), "a list of objects"),
        "tool_choice": (lambda v: isinstance(v, str | dict), "a string or object"),
        "response_format": (_obj, "an object"),
    },
    "/v1/completions": {
        "prompt": (_str_or_list, "a string or a list"),
        "logprobs": (_int, "an integer"),
        "best_of": (lambda v: _int(v) and v >= 1, "an integer of at least 1"),
        "echo": (_bool, "a boolean"),
    },
    "/v1/embeddings": {
        "input": (_str_or_list, "a string or a list"),
        "encoding_format": (_str, "a string"),
        "dimensions": (lambda v: _int(v) and v >= 1, "a positive integer"),
    },
}
_REQUIRED = {
    "/v1/chat/completions": ("model", "messages"),
    "/v1/completions": ("model", "prompt"),
    "/v1/embeddings": ("model", "input"),
}


def check_fields(endpoint: str, body: dict[str, Any]) -> str:
    """Raise a 400 naming the first missing or mistyped field; return the model.

    >>> check_fields("/v1/embeddings", {"model": "e", "input": "x"})
    'e'
    >>> check_fields("/v1/chat/completions", {"model": "m", "messages": []})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    distillwatch.gateway.body.BadBodyError: 'messages' must be a non-empty list of message ...
    """
    for name in _REQUIRED[endpoint]:
        if body.get(name) is None:
            raise BadBodyError(bad_request(f"Missing required parameter: '{name}'.", param=name))
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise BadBodyError(bad_request("'model' must be a non-empty string.", param="model"))
    fields = _ENDPOINT[endpoint]
    for name, value in body.items():
        rule = fields.get(name) or _COMMON.get(name)
        if rule is None or value is None:
            continue
        check, expected = rule
        if not check(value):
            raise BadBodyError(bad_request(f"'{name}' must be {expected}.", param=name))
    return model
