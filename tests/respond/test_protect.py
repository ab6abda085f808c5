"""``protect`` rewrites requests, answers and stream chunks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from distillwatch.respond import Protector, ProtectSettings


def settings(**kw: object) -> ProtectSettings:
    return ProtectSettings(**kw)


def test_request_caps_n_and_best_of_and_drops_logprobs() -> None:
    p = Protector(settings(max_n=2))
    body = {"model": "m", "n": 5, "best_of": 7, "logprobs": 5, "top_logprobs": 3}
    assert p.request(body) == {"model": "m", "n": 2, "best_of": 2}
    assert body["n"] == 5  # the original (logged as sent) is untouched


def test_keep_everything_when_told() -> None:
    p = Protector(settings(reasoning="keep", strip_logprobs=False, max_n=10))
    body = {"choices": [{"message": {"content": "a", "reasoning_content": "r"}, "logprobs": {}}]}
    assert p.response(body) == {
        "choices": [{"message": {"content": "a", "reasoning_content": "r"}, "logprobs": {}}]
    }


def test_response_withholds_every_reasoning_field() -> None:
    p = Protector(settings())
    msg = {"content": "a", "reasoning_content": "r", "reasoning": "r", "reasoning_details": []}
    out = p.response({"choices": [{"index": 0, "message": msg, "logprobs": {"content": []}}]})
    assert out == {"choices": [{"index": 0, "message": {"content": "a"}, "logprobs": None}]}


def test_stream_summary_is_sent_once_per_choice() -> None:
    s = Protector(settings(reasoning="summarise")).stream()
    pieces = ["Let me ", "think. Then ", "more ", "secret steps."]
    out = []
    for piece in pieces:
        chunk = s.chunk({"choices": [{"index": 0, "delta": {"reasoning_content": piece}}]})
        out.append(chunk["choices"][0]["delta"].get("reasoning_content"))
    assert out == [None, "Let me think. […]", None, None]


def test_unknown_transform_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown output transform"):
        settings(transforms=["watermark-v9"])
