"""Errors of the threat-intelligence exchange (one line each, like every distillwatch error)."""

from __future__ import annotations

from distillwatch.errors import DistillwatchError


class IntelError(DistillwatchError):
    """Intel input or configuration is unusable: a key file, a bundle, a members file."""


class RejectedBundleError(IntelError):
    """A received bundle failed verification; ``reason`` says why (unsigned, tampered, …)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"bundle rejected ({reason}){': ' + detail if detail else ''}")
