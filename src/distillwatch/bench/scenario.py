"""Scenarios: which populations a simulated log holds, as YAML validated when loaded.

A scenario file::

    name: default
    start: 2026-03-02T00:00:00Z   # when the log begins (with a UTC offset)
    days: 3                       # how long it runs
    release_after_days: 1.5       # when the new model appears
    populations:
      - profile: chat             # a registered profile (``profiles.PROFILES``)
        count: 4000               # accounts, before ``--scale``
      - profile: nat-group
        name: school-class        # the labels' profile name (default: the profile id)
        count: 60
        knobs: {group_size: 30, topic: math}   # the profile's knobs (builder keywords)

The file is composed into a YAML node tree first, so every problem — bad YAML, a duplicate,
unknown or missing key, an unknown profile or knob, a bad value — is one ``ConfigError``
naming the file, the line and the dotted key (``distillwatch.yamlfile``).

>>> load_scenario("demo").name
'demo'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from distillwatch.bench.profiles import PROFILES
from distillwatch.errors import ConfigError
from distillwatch.yamlfile import (
    Loc,
    compose,
    construct,
    did_you_mean,
    dotted,
    locate,
    one_line,
    reject_duplicate_keys,
    show,
    validation_error,
)

_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
_NAME = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][\w.-]*$")]


@dataclass(frozen=True)
class Population:
    """``count`` accounts of ``profile``, with the profile's knobs."""

    profile: str
    count: int
    knobs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def label(self) -> str:
        """The profile name its accounts' labels carry."""
        return self.name or self.profile


@dataclass(frozen=True)
class Scenario:
    """A simulated log: its populations, when it starts, how long, when the new model ships."""

    name: str
    populations: tuple[Population, ...]
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)
    days: float = 2.0
    release_after_days: float = 1.25

    def scaled(self, scale: float) -> Scenario:
        """Every population's ``count`` times ``scale`` (at least 1; empty ones dropped)."""
        pops = tuple(
            Population(p.profile, max(1, round(p.count * scale)), p.knobs, p.name)
            for p in self.populations
            if p.count > 0
        )
        return Scenario(self.name, pops, self.start, self.days, self.release_after_days)


class PopulationSpec(BaseModel):
    """One ``populations`` entry of a scenario file."""

    model_config = _CONFIG

    profile: Annotated[str, Field(min_length=1)]
    count: Annotated[int, Field(ge=0, le=1_000_000)]
    name: _NAME | None = None
    knobs: dict[str, Any] = {}


class ScenarioFile(BaseModel):
    """A whole scenario file."""

    model_config = _CONFIG

    name: _NAME
    description: str = ""
    start: Annotated[AwareDatetime, Field(strict=False)]
    days: Annotated[float, Field(gt=0.0, le=90.0)]
    release_after_days: Annotated[float, Field(ge=0.0)]
    populations: Annotated[list[PopulationSpec], Field(min_length=1)]


@cache
def knob_model(profile: str) -> type[BaseModel]:
    """A pydantic model of ``profile``'s knobs, from its builder's keyword arguments."""
    build = PROFILES[profile].build
    hints = get_type_hints(build, include_extras=True)
    fields: dict[str, Any] = {
        name: (hints[name], default) for name, default in PROFILES[profile].knobs().items()
    }
    return create_model(f"Knobs_{profile.replace('-', '_')}", __config__=_CONFIG, **fields)


def packaged_scenarios() -> list[str]:
    """Names of the scenarios that ship with the package."""
    folder = resources.files("distillwatch.bench").joinpath("scenarios")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_scenario(scenario: str | Path) -> Scenario:
    """A scenario from a YAML file, or a packaged one by name (``default``, ``demo``, ...)."""
    path = Path(scenario)
    if path.is_file():
        return scenario_from_text(_read(path), str(path))
    name = str(scenario)
    if name in packaged_scenarios():
        res = resources.files("distillwatch.bench").joinpath("scenarios", f"{name}.yaml")
        return scenario_from_text(res.read_text(encoding="utf-8"), f"<packaged {name}.yaml>")
    if path.suffix in (".yaml", ".yml") or "/" in name or path.exists():
        raise ConfigError("scenario file not found", source=path)
    known = ", ".join(packaged_scenarios())
    raise ConfigError(f"no scenario file or packaged scenario {name!r} (packaged: {known})")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read scenario file: {e}", source=path) from None


def scenario_from_text(text: str, source: str = "<text>") -> Scenario:
    """Parse and validate a scenario; any problem is a ConfigError naming ``source`` and line."""
    node = compose(text, source, ConfigError)
    if not isinstance(node, yaml.MappingNode):
        what = "empty" if node is None else "not a mapping of keys"
        raise ConfigError(f"scenario file is {what}", source=source)
    reject_duplicate_keys(node, source, ConfigError)
    data = construct(node, source, ConfigError)
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as e:
        raise _error(e, (), source, node, ScenarioFile) from None
    pops = tuple(
        Population(p.profile, p.count, dict(p.knobs), p.name or "") for p in spec.populations
    )
    if spec.release_after_days > spec.days:
        loc: Loc = ("release_after_days",)
        raise ConfigError(
            f"must be ≤ days ({spec.days:g}) (got {spec.release_after_days:g})",
            source=source,
            line=locate(node, loc),
            key=dotted(loc),
        )
    sc = Scenario(spec.name, pops, spec.start, spec.days, spec.release_after_days)
    return validate_scenario(sc, source, node)


def validate_scenario(
    sc: Scenario, source: str | None = None, node: yaml.Node | None = None
) -> Scenario:
    """``sc`` with its knobs checked against each profile's (``node`` gives line numbers)."""
    source = source or f"scenario {sc.name!r}"
    seen: dict[str, int] = {}
    pops = []
    for i, pop in enumerate(sc.populations):
        at: Loc = ("populations", i)
        loc: Loc
        if pop.profile not in PROFILES:
            hint = did_you_mean(pop.profile, PROFILES)
            loc = (*at, "profile")
            raise ConfigError(
                f"unknown profile {pop.profile!r}{hint}; known: {', '.join(PROFILES)}",
                source=source,
                line=locate(node, loc),
                key=dotted(loc),
            )
        model = knob_model(pop.profile)
        try:
            knobs = model.model_validate(pop.knobs).model_dump(exclude_unset=True)
        except ValidationError as e:
            raise _error(e, (*at, "knobs"), source, node, model, pop.profile) from None
        if pop.label in seen:
            loc = (*at, "name" if pop.name else "profile")
            raise ConfigError(
                f"population name {pop.label!r} is used twice (also entry {seen[pop.label]}); "
                "give each entry its own `name`",
                source=source,
                line=locate(node, loc),
                key=dotted(loc),
            )
        seen[pop.label] = i
        pops.append(Population(pop.profile, pop.count, knobs, pop.name))
    return Scenario(sc.name, tuple(pops), sc.start, sc.days, sc.release_after_days)


def _error(
    exc: ValidationError,
    prefix: Loc,
    source: str,
    node: yaml.Node | None,
    model: type[BaseModel],
    profile: str | None = None,
) -> ConfigError:
    """The first problem in file order as a ConfigError with its line and dotted key."""

    def describe(err: ErrorDetails) -> str:
        if err["type"] == "extra_forbidden":
            known = list(model.model_fields)
            what = f"unknown knob of profile {profile}" if profile else "unknown key"
            message = what + did_you_mean(str(err["loc"][-1]), known)
            if profile:
                message += f"; its knobs: {', '.join(known) or 'none'}"
            return message
        if err["type"] == "missing":
            return "missing required key"
        text = one_line(err["msg"])
        return f"{text[:1].lower()}{text[1:]} (got {show(err['input'])})"

    return validation_error(exc, source, ConfigError, node=node, describe=describe, prefix=prefix)
