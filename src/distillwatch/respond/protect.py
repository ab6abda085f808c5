"""``protect``: keep serving, but without what a distiller learns most from.

Applied to the request: ``logprobs``/``top_logprobs`` removed, ``n`` (and ``best_of``)
capped. Applied to the response: reasoning content withheld or cut to a one-sentence
summary, log-probabilities removed, and every registered output transform run on the
answer text (the hook where watermarking and perturbation plug in). Streams are
transformed chunk by chunk with a small per-stream state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

REASONING_KEYS = ("reasoning_content", "reasoning", "reasoning_details")
"""Where OpenAI-compatible servers put reasoning (vLLM, llama.cpp, OpenRouter, ...)."""
SUMMARY_CHARS = 160
_SENTENCE_END = re.compile(r"[.!?](\s|$)")


class OutputTransform(Protocol):
    """Rewrites answer text: the whole message, or each streamed piece of it in order."""

    def __call__(self, text: str, /) -> str: ...


TRANSFORMS: dict[str, Callable[[], OutputTransform]] = {}
"""Output transforms by stable id; ``protect.transforms`` in the config names them."""


def register_transform(
    transform_id: str,
) -> Callable[[Callable[[], OutputTransform]], Callable[[], OutputTransform]]:
    """Decorator: make a transform factory available to the config by ``transform_id``."""

    def add(factory: Callable[[], OutputTransform]) -> Callable[[], OutputTransform]:
        if transform_id in TRANSFORMS:
            raise ValueError(f"output transform {transform_id!r} registered twice")
        TRANSFORMS[transform_id] = factory
        return factory

    return add


@register_transform("identity")
def _identity() -> OutputTransform:
    """The no-op transform (a placeholder until watermarking lands)."""
    return lambda text: text


class ProtectSettings(BaseModel):
    """What ``protect`` changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reasoning: Literal["withhold", "summarise", "keep"] = Field(
        "withhold", description="drop reasoning, cut it to its first sentence, or keep it"
    )
    strip_logprobs: bool = True
    max_n: int = Field(1, ge=1, description="most completions per request")
    transforms: list[str] = Field(default_factory=list, description="output transform ids")

    @field_validator("transforms")
    @classmethod
    def _known(cls, ids: list[str]) -> list[str]:
        unknown = [i for i in ids if i not in TRANSFORMS]
        if unknown:
            raise ValueError(
                f"unknown output transform(s) {', '.join(unknown)}; known: {', '.join(TRANSFORMS)}"
            )
        return ids


def summarise(text: str) -> str:
    """The first sentence of ``text``, at most ``SUMMARY_CHARS`` characters, marked as cut.

    >>> summarise("First, add 2 and 2. Then carry the one.")
    'First, add 2 and 2. […]'
    """
    m = _SENTENCE_END.search(text)
    cut = text[: m.start() + 1] if m else text
    if len(cut) > SUMMARY_CHARS:
        cut = cut[:SUMMARY_CHARS].rstrip()
    return f"{cut.strip()} […]"


class Protector:
    """Request and response rewriting for protected accounts."""

    def __init__(self, settings: ProtectSettings) -> None:
        self.settings = settings
        self.transforms = [TRANSFORMS[i]() for i in settings.transforms]

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of the request body with log-probabilities off and ``n`` capped.

        >>> Protector(ProtectSettings()).request({"model": "m", "n": 5, "logprobs": True})
        {'model': 'm', 'n': 1}
        """
        out = dict(body)
        if self.settings.strip_logprobs:
            out.pop("logprobs", None)
            out.pop("top_logprobs", None)
        for key in ("n", "best_of"):
            value = out.get(key)
            if isinstance(value, int) and value > self.settings.max_n:
                out[key] = self.settings.max_n
        return out

    def text(self, text: str) -> str:
        for transform in self.transforms:
            text = transform(text)
        return text

    def response(self, body: dict[str, Any]) -> dict[str, Any]:
        """Rewrite a complete (non-streamed) chat or text completion in place; return it."""
        for choice in _choices(body):
            if self.settings.strip_logprobs and "logprobs" in choice:
                choice["logprobs"] = None
            message = choice.get("message")
            if isinstance(message, dict):
                self._reasoning(message)
                if isinstance(message.get("content"), str):
                    message["content"] = self.text(message["content"])
            if isinstance(choice.get("text"), str):
                choice["text"] = self.text(choice["text"])
        return body

    def stream(self) -> StreamProtector:
        return StreamProtector(self)

    def _reasoning(self, holder: dict[str, Any]) -> None:
        mode = self.settings.reasoning
        if mode == "keep":
            return
        for key in REASONING_KEYS:
            if key not in holder:
                continue
            value = holder.pop(key)
            if mode == "summarise" and isinstance(value, str) and value:
                holder[key] = summarise(value)


class StreamProtector:
    """Per-stream state: streamed reasoning is summarised once its first sentence is in."""

    def __init__(self, protector: Protector) -> None:
        self.p = protector
        self.reasoning: dict[int, str] = {}
        self.summarised: set[int] = set()

    def chunk(self, body: dict[str, Any]) -> dict[str, Any]:
        """Rewrite one ``chat.completion.chunk`` / text completion chunk in place; return it."""
        for choice in _choices(body):
            if self.p.settings.strip_logprobs and "logprobs" in choice:
                choice["logprobs"] = None
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._reasoning(int(choice.get("index", 0) or 0), delta)
                if isinstance(delta.get("content"), str):
                    delta["content"] = self.p.text(delta["content"])
            if isinstance(choice.get("text"), str):
                choice["text"] = self.p.text(choice["text"])
        return body

    def _reasoning(self, index: int, delta: dict[str, Any]) -> None:
        mode = self.p.settings.reasoning
        if mode == "keep":
            return
        for key in REASONING_KEYS:
            if key not in delta:
                continue
            value = delta.pop(key)
            if mode != "summarise" or not isinstance(value, str) or index in self.summarised:
                continue
            seen = self.reasoning.get(index, "") + value
            self.reasoning[index] = seen
            if _SENTENCE_END.search(seen) or len(seen) >= SUMMARY_CHARS:
                delta[key] = summarise(seen)
                self.summarised.add(index)
                del self.reasoning[index]


def _choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices")
    if not isinstance(choices, list):
        return []
    return [c for c in choices if isinstance(c, dict)]
