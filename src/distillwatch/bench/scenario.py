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
naming the file, the line and the dotted key (the approach of ``policy.loader``).

>>> load_scenario("demo").name
'demo'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model

from distillwatch.bench.profiles import PROFILES
from distillwatch.errors import ConfigError

Loc = tuple[int | str, ...]

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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else None
        raise ConfigError(
            f"invalid YAML: {_flat(e.problem or str(e))}", source=source, line=line
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {_flat(str(e))}", source=source) from None
    if not isinstance(node, yaml.MappingNode):
        what = "empty" if node is None else "not a mapping of keys"
        raise ConfigError(f"scenario file is {what}", source=source)
    _no_duplicates(node, (), source)
    data = yaml.SafeLoader("").construct_document(node)
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
            line=_locate(node, loc, key=False),
            key=_dotted(loc),
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
            close = difflib.get_close_matches(pop.profile, PROFILES, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            loc = (*at, "profile")
            raise ConfigError(
                f"unknown profile {pop.profile!r}{hint}; known: {', '.join(PROFILES)}",
                source=source,
                line=_locate(node, loc, key=False),
                key=_dotted(loc),
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
                line=_locate(node, loc, key=False),
                key=_dotted(loc),
            )
        seen[pop.label] = i
        pops.append(Population(pop.profile, pop.count, knobs, pop.name))
    return Scenario(sc.name, tuple(pops), sc.start, sc.days, sc.release_after_days)


def _no_duplicates(node: yaml.Node, path: Loc, source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; a scenario must not."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise ConfigError(
                    f"duplicate key (first at line {seen[name]})",
                    source=source,
                    line=key.start_mark.line + 1,
                    key=_dotted((*path, name)),
                )
            seen[name] = key.start_mark.line + 1
            _no_duplicates(value, (*path, name), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicates(item, (*path, i), source)


def _error(
    exc: ValidationError,
    prefix: Loc,
    source: str,
    node: yaml.Node | None,
    model: type[BaseModel],
    profile: str | None = None,
) -> ConfigError:
    """The first problem in file order as a ConfigError with its line and dotted key."""
    errors = exc.errors(include_url=False)
    found = []
    for i, err in enumerate(errors):
        loc = (*prefix, *err["loc"])
        line = _locate(node, loc, key=err["type"] in ("extra_forbidden", "missing"))
        found.append((err["type"] == "missing", line or 0, i, loc, err))
    _, line, _, loc, err = min(found, key=lambda f: f[:3])
    if err["type"] == "extra_forbidden":
        known = list(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        what = f"unknown knob of profile {profile}" if profile else "unknown key"
        message = what + (f" (did you mean `{close[0]}`?)" if close else "")
        if profile:
            message += f"; its knobs: {', '.join(known) or 'none'}"
    elif err["type"] == "missing":
        message = "missing required key"
    else:
        text = _flat(err["msg"])
        message = f"{text[:1].lower()}{text[1:]} (got {_show(err['input'])})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(message, source=source, line=line or None, key=_dotted(loc))


def _locate(node: yaml.Node | None, loc: Loc, *, key: bool) -> int | None:
    """Line of the key (``key``) or the value that ``loc`` points at, as far as it exists."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if pair is None:
                break
            node = pair[1]
            line = (pair[0] if key or not last else pair[1]).start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc if p != "[key]")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return "null" if value is None else _flat(str(value))


def _flat(text: str) -> str:
    return " ".join(text.split())
