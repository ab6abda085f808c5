"""The typed records every stage passes along (never loose dicts).

Exchange-log records (``Exchange``, ``Account``, ``Label``, ``Verdict``) follow
``shared/spec/exchange-log.md`` v1 field for field; engine records (``SignalValue``,
``Score``, ``Decision``) carry what the detector computed and why.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import msgspec

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Exchange(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One API request and its response (spec: *exchanges*)."""

    id: NonEmptyStr
    ts: AwareDatetime
    account_id: NonEmptyStr
    api_key_id: str | None = None
    ip: NonEmptyStr
    user_agent: str | None = None
    model: NonEmptyStr
    endpoint: str | None = None
    request: dict[str, Any] | None = None
    response_text: str | None = None
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    reasoning_tokens: Count | None = None
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] | None = None

    @property
    def served(self) -> bool:
        """Whether the client got an answer: status 2xx, or no status recorded (spec)."""
        return self.status is None or 200 <= self.status < 300


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """Sign-up metadata for one billing account (spec: *accounts*)."""

    account_id: NonEmptyStr
    created_at: AwareDatetime | None = None
    org_id: str | None = None
    email_domain: str | None = None
    payment_fingerprint: str | None = None
    country: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")] | None = None
    tier: str | None = None
    verified: bool | None = None


class Label(msgspec.Struct, frozen=True, kw_only=True):
    """Ground truth for one account, benchmarks only (spec: *labels*)."""

    account_id: NonEmptyStr
    label: Annotated[str, msgspec.Meta(pattern="^(legit|attack)$")]
    campaign_id: str | None = None
    profile: str | None = None


class Action(enum.Enum):
    """What the policy does to an account, weakest first."""

    ALLOW = "allow"
    MONITOR = "monitor"
    THROTTLE = "throttle"
    PROTECT = "protect"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _ACTION_RANK[self]

    @property
    def enforces(self) -> bool:
        """Throttle or stronger: the actions that count for ``first_action_ts``."""
        return self.rank >= _ACTION_RANK[Action.THROTTLE]


_ACTION_RANK = {a: i for i, a in enumerate(Action)}


class SignalValue(msgspec.Struct, frozen=True, kw_only=True):
    """What one signal says about one account at one moment.

    ``evidence`` is in log-odds units (positive: looks like distillation); ``value`` is the
    raw measurement the explanation talks about. ``available`` is false when the log lacks
    what the signal needs (no prompt text, too few exchanges yet); ``explanation`` then
    says why.
    """

    signal_id: str
    version: int
    value: float | None
    evidence: float
    explanation: str
    available: bool = True


class Score(msgspec.Struct, frozen=True, kw_only=True):
    """The combined suspicion of an account and the signals behind it."""

    account_id: str
    score: float
    signals: tuple[SignalValue, ...]

    def reasons(
        self, contributions: Mapping[str, float] | None = None, limit: int = 5
    ) -> list[str]:
        """Explanations of the signals that pushed the score up, strongest first.

        ``contributions`` (signal id → its term in the score's log-odds, from the scorer)
        ranks them; without it, raw evidence does.
        """
        c = contributions
        up = sorted(
            (
                (c.get(s.signal_id, 0.0) if c is not None else s.evidence, s.explanation)
                for s in self.signals
                if s.available
            ),
            key=lambda x: -x[0],
        )
        return [text for weight, text in up[:limit] if weight > 0]

    @property
    def unavailable(self) -> list[str]:
        return [s.signal_id for s in self.signals if not s.available]


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The policy's answer for an account at a moment, with its provenance."""

    account_id: str
    action: Action
    score: float
    rule: str
    policy: str
    policy_hash: str


class PolicyRef(msgspec.Struct, frozen=True, kw_only=True):
    """Which policy rule decided, so a verdict can be audited and appealed."""

    name: str
    version: int
    hash: str
    rule: str


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """distillwatch's compatible extension of a verdict: every signal, and the policy."""

    exchanges: int
    signals: dict[str, float | None]
    unavailable: list[str]
    policy: PolicyRef


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What ``scan`` writes for one account (spec: *verdicts*), plus ``evidence``."""

    account_id: NonEmptyStr
    score: Probability
    action: Action
    campaign_id: str | None = None
    first_action_ts: AwareDatetime | None = None
    exchanges_before_action: Count | None = None
    reasons: list[str] = msgspec.field(default_factory=list)
    evidence: Evidence | None = None
