"""What the exchange log keeps of a response: first-choice text and token counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Harvest:
    """Response facts gathered from a complete body or from stream chunks."""

    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    _pieces: list[str] | None = None

    def from_body(self, body: dict[str, Any]) -> None:
        """A complete chat/text completion or embeddings response.

        >>> h = Harvest()
        >>> h.from_body({"choices": [{"message": {"content": "hi"}}],
        ...              "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
        >>> (h.text, h.prompt_tokens, h.completion_tokens)
        ('hi', 3, 1)
        """
        first = _first_choice(body)
        if first is not None:
            message = first.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                self.text = message["content"]
            elif isinstance(first.get("text"), str):
                self.text = first["text"]
        self.usage(body.get("usage"))

    def from_chunk(self, chunk: dict[str, Any]) -> None:
        """One streamed chunk: text of choice 0 is appended; usage (last chunk) kept."""
        first = _first_choice(chunk)
        if first is not None:
            delta = first.get("delta")
            piece = None
            if isinstance(delta, dict):
                piece = delta.get("content")
            elif "text" in first:
                piece = first.get("text")
            if isinstance(piece, str) and piece:
                if self._pieces is None:
                    self._pieces = []
                self._pieces.append(piece)
        if chunk.get("usage"):
            self.usage(chunk["usage"])

    def finish(self) -> None:
        if self._pieces is not None:
            self.text = "".join(self._pieces)
            self._pieces = None

    def usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.prompt_tokens = _count(usage.get("prompt_tokens"))
        self.completion_tokens = _count(usage.get("completion_tokens"))
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict):
            self.reasoning_tokens = _count(details.get("reasoning_tokens"))

    @property
    def total_tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


def _first_choice(body: dict[str, Any]) -> dict[str, Any] | None:
    choices = body.get("choices")
    if isinstance(choices, list):
        for c in choices:
            if isinstance(c, dict) and c.get("index", 0) == 0:
                return c
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
