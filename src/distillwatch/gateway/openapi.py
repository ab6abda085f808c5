"""The gateway's OpenAPI description (served at ``/openapi.json``).

It describes what the gateway itself checks and answers — the request fields it validates and
the canonical error body of every refusal — not every field an upstream may accept (other
fields pass through).
"""

from __future__ import annotations

from typing import Any

from distillwatch.respond.errors import error_body

_FIELD_TYPES = {"message": "string", "type": "string", "param": "string", "code": "string"}
_SAMPLE = error_body("", type="")  # the schema follows the one canonical body


def _error_schema() -> dict[str, Any]:
    [(outer, inner)] = _SAMPLE.items()
    fields = {
        k: {"type": _FIELD_TYPES[k], **({"nullable": True} if v is None else {})}
        for k, v in inner.items()
    }
    return {
        "type": "object",
        "required": [outer],
        "properties": {outer: {"type": "object", "required": list(inner), "properties": fields}},
    }


_COMMON = {
    "model": {"type": "string", "minLength": 1},
    "stream": {"type": "boolean"},
    "n": {"type": "integer", "minimum": 1},
    "max_tokens": {"type": "integer", "minimum": 0},
    "temperature": {"type": "number"},
    "top_p": {"type": "number"},
    "seed": {"type": "integer"},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "user": {"type": "string"},
}
_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string"},
        "content": {"oneOf": [{"type": "string"}, {"type": "array"}], "nullable": True},
    },
}
_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "required": ["model", "messages"],
        "properties": {
            **_COMMON,
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "logprobs": {"type": "boolean"},
            "top_logprobs": {"type": "integer"},
            "tools": {"type": "array", "items": {"type": "object"}},
        },
    },
    "/v1/completions": {
        "required": ["model", "prompt"],
        "properties": {
            **_COMMON,
            "prompt": {"oneOf": [{"type": "string"}, {"type": "array"}]},
            "logprobs": {"type": "integer"},
            "echo": {"type": "boolean"},
        },
    },
    "/v1/embeddings": {
        "required": ["model", "input"],
        "properties": {
            "model": _COMMON["model"],
            "input": {"oneOf": [{"type": "string"}, {"type": "array"}]},
            "encoding_format": {"type": "string"},
            "dimensions": {"type": "integer", "minimum": 1},
            "user": {"type": "string"},
        },
    },
}
_REFUSALS = {
    "400": "malformed JSON, missing or mistyped field",
    "401": "missing or unknown API key",
    "403": "account blocked (the message quotes a support reference)",
    "413": "request body over the configured limit",
    "429": "throttled: request or token budget spent",
    "502": "upstream unreachable",
    "503": "fail-closed: the decision or the log is unavailable",
    "504": "upstream did not answer in time",
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi(title: str = "distillwatch gateway") -> dict[str, Any]:
    """The OpenAPI 3.0 document.

    >>> sorted(openapi()["paths"])
    ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models']
    """
    paths: dict[str, Any] = {}
    for path, schema in _BODIES.items():
        # optional fields may be null (OpenAI's API accepts it, and so does the gateway)
        props = {
            name: prop if name in schema["required"] else {**prop, "nullable": True}
            for name, prop in schema["properties"].items()
        }
        schema = {**schema, "properties": props}
        paths[path] = {
            "post": {
                "operationId": path.strip("/").replace("/", "_"),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object", **schema}}},
                },
                "responses": {
                    "200": {
                        "description": "the upstream's answer (JSON, or SSE when streaming)",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "text/event-stream": {"schema": {}},  # JSON chunks, then [DONE]
                        },
                    },
                    **{code: _error_response(why) for code, why in _REFUSALS.items()},
                },
            }
        }
    paths["/v1/models"] = {
        "get": {
            "operationId": "v1_models",
            "responses": {
                "200": {
                    "description": "the upstream's model list",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": _error_response(_REFUSALS["401"]),
                "502": _error_response(_REFUSALS["502"]),
                "504": _error_response(_REFUSALS["504"]),
            },
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": _error_schema()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
