"""The runtime policy: score → action, with the rule that decided.

Everything is precomputed from the validated file when the policy is built, so
:meth:`Policy.decide` is a handful of float comparisons per call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from distillwatch.policy.schema import LEVELS, PolicyFile
from distillwatch.records import Action, PolicyRef

BELOW_THRESHOLDS = "below-thresholds"

_ACTIONS = {level: Action(level) for level in LEVELS}


@dataclass(frozen=True, slots=True)
class _Plan:
    """One tier's (or the top level's) merged thresholds, strongest action first."""

    steps: tuple[tuple[float, Action, str], ...]
    min_exchanges: int
    min_rule: str


class Policy:
    """A validated policy, ready to decide. Build it with ``load_policy`` or
    ``policy_from_mapping``; it is immutable once built."""

    __slots__ = (
        "_campaign_min",
        "_default",
        "_plans",
        "hash",
        "model",
        "name",
        "source",
        "version",
    )

    name: str
    version: int
    hash: str
    source: str
    model: PolicyFile

    def __init__(self, model: PolicyFile, *, source: str) -> None:
        self.model = model
        self.name = model.name
        self.version = model.version
        self.source = source
        self.hash = policy_hash(model)
        self._default = _plan(model, None)
        self._plans = {tier: _plan(model, tier) for tier in model.tiers}
        self._campaign_min = model.campaign_min_exchanges

    def decide(
        self, score: float, *, tier: str | None, exchanges: int, campaign: bool = False
    ) -> tuple[Action, str]:
        """Strongest action whose threshold ``score`` reaches, and the rule that says so.

        Unknown or missing tiers use the top-level thresholds. Before an account has
        ``min_exchanges`` exchanges nothing stronger than ``MONITOR`` is returned (rule
        ``min_exchanges``, or ``tiers.<tier>.min_exchanges`` when the tier sets it). For an
        account linked to a detected campaign (``campaign``) the policy's
        ``campaign_min_exchanges`` applies instead when it is lower (rule
        ``campaign_min_exchanges``): its campaign is the evidence its own history lacks.

        >>> from distillwatch.policy import load_policy
        >>> policy = load_policy()
        >>> policy.decide(0.85, tier=None, exchanges=500)
        (<Action.THROTTLE: 'throttle'>, 'thresholds.throttle')
        >>> policy.decide(0.85, tier=None, exchanges=3)
        (<Action.MONITOR: 'monitor'>, 'min_exchanges')
        >>> policy.decide(0.10, tier="enterprise", exchanges=500)
        (<Action.ALLOW: 'allow'>, 'below-thresholds')
        """
        if score != score:  # NaN reaches no threshold; refuse rather than silently allow
            raise ValueError("score is NaN")
        plan = self._plans.get(tier, self._default) if tier is not None else self._default
        least, least_rule = plan.min_exchanges, plan.min_rule
        if campaign and self._campaign_min is not None and self._campaign_min < least:
            least, least_rule = self._campaign_min, "campaign_min_exchanges"
        for threshold, action, rule in plan.steps:
            if score >= threshold:
                if exchanges < least and action is not Action.MONITOR:
                    return Action.MONITOR, least_rule
                return action, rule
        return Action.ALLOW, BELOW_THRESHOLDS

    def ref(self, rule: str) -> PolicyRef:
        """Provenance for a verdict decided by ``rule``."""
        return PolicyRef(name=self.name, version=self.version, hash=self.hash, rule=rule)

    def thresholds(self, tier: str | None = None) -> dict[str, float]:
        """The effective thresholds for ``tier`` (top level when unknown or ``None``)."""
        plan = self._plans.get(tier, self._default) if tier is not None else self._default
        return {action.value: threshold for threshold, action, _ in reversed(plan.steps)}

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, version={self.version}, hash={self.hash!r})"


def policy_hash(model: PolicyFile) -> str:
    """First 16 hex chars of the sha256 of the model's canonical JSON.

    Defaults are filled in and keys sorted, so comments, whitespace, key order and
    spelling a default out explicitly do not change it.
    """
    data = model.model_dump(mode="json")
    if data.get("campaign_min_exchanges") is None:  # unset: the hash policies had before it
        data.pop("campaign_min_exchanges", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _plan(model: PolicyFile, tier: str | None) -> _Plan:
    values, origin = model.merged(tier)
    if tier is None:
        min_exchanges, min_rule = model.min_exchanges, "min_exchanges"
    else:
        override = model.tiers[tier].min_exchanges
        if override is None:
            min_exchanges, min_rule = model.min_exchanges, "min_exchanges"
        else:
            min_exchanges, min_rule = override, f"tiers.{tier}.min_exchanges"
    steps = tuple((values[lvl], _ACTIONS[lvl], ".".join(origin[lvl])) for lvl in reversed(LEVELS))
    return _Plan(steps=steps, min_exchanges=min_exchanges, min_rule=min_rule)
