"""Pydantic models of a policy file: its shape and every constraint, checked once at load.

Numbers are strict (``"0.8"`` or ``yes`` is not a threshold), unknown keys are errors, and
ordering violations are reported against the exact key that breaks them, so the loader can
point at a line.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

#: Threshold names, weakest action first; each must be ≤ the next.
LEVELS: Final = ("monitor", "throttle", "protect", "block")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]

_CONFIG: Final = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

Loc = tuple[str, ...]


class Thresholds(BaseModel):
    """Score at or above which each action applies (all four required).

    Their order is checked by :class:`PolicyFile`, which knows the full key paths.
    """

    model_config = _CONFIG

    monitor: Probability
    throttle: Probability
    protect: Probability
    block: Probability


class ThresholdOverrides(BaseModel):
    """A tier's replacements for some of the top-level thresholds."""

    model_config = _CONFIG

    monitor: Probability | None = None
    throttle: Probability | None = None
    protect: Probability | None = None
    block: Probability | None = None

    def given(self) -> dict[str, float]:
        """The thresholds this override actually sets."""
        return {lvl: v for lvl in LEVELS if (v := getattr(self, lvl)) is not None}


class TierPolicy(BaseModel):
    """Per-tier overrides; anything left out is inherited from the top level."""

    model_config = _CONFIG

    thresholds: ThresholdOverrides = ThresholdOverrides()
    min_exchanges: Count | None = None


class PolicyFile(BaseModel):
    """A whole policy file."""

    model_config = _CONFIG

    name: Annotated[str, Field(min_length=1)]
    version: Annotated[int, Field(ge=1)]
    thresholds: Thresholds
    min_exchanges: Count = 0
    campaign_min_exchanges: Count | None = None
    """For accounts linked to a detected campaign: act from this many exchanges when that is
    sooner than the (tier's) ``min_exchanges``. None: no exception."""
    tiers: dict[Annotated[str, Field(min_length=1)], TierPolicy] = {}

    def merged(self, tier: str | None) -> tuple[dict[str, float], dict[str, Loc]]:
        """A tier's effective thresholds (top level for ``None``) and the key each comes from."""
        values = {lvl: float(getattr(self.thresholds, lvl)) for lvl in LEVELS}
        origin: dict[str, Loc] = {lvl: ("thresholds", lvl) for lvl in LEVELS}
        if tier is None:
            return values, origin
        for lvl, value in self.tiers[tier].thresholds.given().items():
            values[lvl] = value
            origin[lvl] = ("tiers", tier, "thresholds", lvl)
        return values, origin

    @model_validator(mode="after")
    def _non_decreasing(self) -> PolicyFile:
        for tier in (None, *self.tiers):
            values, origin = self.merged(tier)
            _check_order(values, origin, title="PolicyFile")
        return self


def number(value: float) -> str:
    """A number as users write it: ``1`` rather than ``1.0``."""
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


def _check_order(values: dict[str, float], origin: dict[str, Loc], *, title: str) -> None:
    """Raise a located ValidationError at the first pair of levels out of order.

    The blamed key is the one a tier overrides (when only one side is overridden), else the
    stronger level.
    """
    for weak, strong in pairwise(LEVELS):
        lo, hi = values[weak], values[strong]
        if lo <= hi:
            continue
        weak_from, strong_from = origin[weak], origin[strong]
        weak_is_override = weak_from[0] == "tiers" and strong_from[0] != "tiers"
        if weak_is_override:
            blame, other, rel, bound, got = weak_from, strong_from, "≤", hi, lo
        else:
            blame, other, rel, bound, got = strong_from, weak_from, "≥", lo, hi
        error = PydanticCustomError(
            "threshold_order",
            "must be {rel} `{other}` ({bound})",
            {"rel": rel, "other": ".".join(other), "bound": number(bound)},
        )
        raise ValidationError.from_exception_data(
            title, [InitErrorDetails(type=error, loc=blame, input=got)]
        )
