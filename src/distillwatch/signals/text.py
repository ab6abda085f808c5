"""Getting at the prompt text of a request, whatever its OpenAI-compatible shape."""

from __future__ import annotations

from typing import Any

MAX_CHARS = 4000
"""Signals read at most this many characters of a prompt (head and tail): bounded cost."""


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        text = "\n".join(p for p in parts if isinstance(p, str))
        return text or None
    return None


def last_user_text(request: dict[str, Any] | None) -> str | None:
    """The newest user turn of a chat request (or a Responses API ``input``), or a
    completions ``prompt``; None without text.

    >>> last_user_text({"messages": [{"role": "user", "content": "Hi"}]})
    'Hi'
    >>> last_user_text({"input": [{"role": "user", "content": [
    ...     {"type": "input_text", "text": "Solve x"}]}]})
    'Solve x'
    >>> last_user_text({"input": "Hello"})
    'Hello'
    >>> last_user_text(None) is None
    True
    """
    if not request:
        return None
    messages = request.get("messages")
    text: str | None = None
    if messages is None and "input" in request:  # the Responses API: a string or items
        messages = request["input"]
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                text = _content_text(m.get("content"))
                break
    else:
        prompt = request.get("prompt")
        if isinstance(prompt, str):
            text = prompt
        elif isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            text = prompt[0]
    if text is not None and len(text) > MAX_CHARS:
        half = MAX_CHARS // 2
        text = text[:half] + "\n" + text[-half:]
    return text
