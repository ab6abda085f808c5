"""The actors file: an analyst's attribution of local campaigns to a threat actor.

``intel export --actors actors.yaml`` turns each actor into one STIX ``intrusion-set`` that
the member's exported campaigns are ``attributed-to``::

    actors:
      - name: Sandstorm Harvest          # what receivers see (analyst-written, never data)
        campaigns: [camp_7f3a2b91, camp_91c2d0e4]   # local ids, as in campaigns.jsonl
        aliases: [SH-1]                  # optional
        description: Reseller of distilled reasoning models.       # optional
        goals: [train a competing reasoning model]                  # optional, free text
        resource_level: organization     # optional, STIX attack-resource-level-ov
        primary_motivation: organizational-gain   # optional, STIX attack-motivation-ov
        secondary_motivations: [personal-gain]    # optional, the same vocabulary
        first_seen: 2026-10-01           # optional: a date or a time with a zone
        confidence: 70                   # optional, 0-100: how sure the attribution is

The local campaign ids never leave the member: they only say which exported campaign (named
by a keyed token) is attributed to which actor. Every problem is one ``IntelError`` line
naming the file, the line and the key, e.g. ``actors.yaml:5: `actors.0.resource_level`:
unknown value 'organisation' (did you mean 'organization'?) ...``. A campaign id that is not
in ``campaigns.jsonl`` is an error at export (``Actors.check``), not a silently lost
attribution.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import stix2.v21.vocab as vocab
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from distillwatch.attribute.campaigns import read_campaigns
from distillwatch.share.errors import IntelError

MOTIVATIONS: Final = tuple(vocab.ATTACK_MOTIVATION)
"""STIX 2.1 ``attack-motivation-ov``."""
RESOURCE_LEVELS: Final = tuple(vocab.ATTACK_RESOURCE_LEVEL)
"""STIX 2.1 ``attack-resource-level-ov``."""

Text = Annotated[str, Field(min_length=1, max_length=2000)]
Loc = tuple[int | str, ...]


def _vocab(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value in allowed:
        return value
    close = difflib.get_close_matches(value, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown value {value!r}{hint}; STIX 2.1 {name}: {', '.join(allowed)}")


def _motivation(value: str) -> str:
    return _vocab(value, MOTIVATIONS, "attack-motivation-ov")


def _resource_level(value: str) -> str:
    return _vocab(value, RESOURCE_LEVELS, "attack-resource-level-ov")


Motivation = Annotated[str, AfterValidator(_motivation)]
ResourceLevel = Annotated[str, AfterValidator(_resource_level)]


class ActorEntry(BaseModel):
    """One actor and the local campaigns attributed to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    campaigns: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    aliases: list[Annotated[str, Field(min_length=1, max_length=200)]] = []
    description: Text | None = None
    goals: list[Text] = []
    resource_level: ResourceLevel | None = None
    primary_motivation: Motivation | None = None
    secondary_motivations: list[Motivation] = []
    first_seen: datetime | None = None
    confidence: Annotated[int, Field(ge=0, le=100)] | None = None

    @field_validator("name", "aliases", "description", "goals", mode="after")
    @classmethod
    def _collapse(cls, value: Any) -> Any:
        """Whitespace collapsed; blank text is refused."""
        if value is None:
            return None
        out = [" ".join(v.split()) for v in (value if isinstance(value, list) else [value])]
        if not all(out):
            raise ValueError("must not be blank")
        return out if isinstance(value, list) else out[0]

    @field_validator("first_seen", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"not a date or an RFC 3339 time: {value!r}") from None
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("a time needs a zone (e.g. 2026-10-01T00:00:00Z), or give a date")
        return value


class ActorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actors: Annotated[list[ActorEntry], Field(min_length=1)]


@dataclass(frozen=True)
class Actor:
    """A validated actor: its entry, and where its campaign ids are in the file."""

    entry: ActorEntry
    key: str
    """The name, whitespace collapsed and case-folded: what its intrusion-set id derives from
    (so a re-cased name keeps the id)."""
    line: int | None
    campaign_lines: Mapping[str, int | None]


@dataclass(frozen=True)
class Actors:
    """Every actor of an actors file, and which actor each local campaign is attributed to."""

    source: str
    actors: tuple[Actor, ...]

    def of(self, campaign_id: str) -> Actor | None:
        """The actor a local campaign is attributed to, if any."""
        return next((a for a in self.actors if campaign_id in a.campaign_lines), None)

    def check(self, known: Collection[str]) -> None:
        """``IntelError`` (file, line) for the first campaign id that is not in ``known``."""
        for actor in self.actors:
            for cid, line in actor.campaign_lines.items():
                if cid not in known:
                    raise IntelError(
                        f"{_where(self.source, line)}: actor {actor.entry.name!r}: no campaign "
                        f"{cid!r} in campaigns.jsonl (a typo would lose the attribution)"
                    )

    def check_file(self, campaigns: Path) -> None:
        """``check`` against a ``campaigns.jsonl`` (before a long log is read for nothing)."""
        try:
            known = {c.campaign_id for c in read_campaigns(campaigns)}
        except OSError as exc:
            raise IntelError(f"cannot read {campaigns}: {exc.strerror or exc}") from None
        self.check(known)

    def check_private(self, secrets: Iterable[str]) -> None:
        """``IntelError`` when an actor's text names a local campaign or account id (they are
        never shared; the campaign ids belong in ``campaigns`` only)."""
        words = set(secrets)
        for actor in self.actors:
            e = actor.entry
            for field_name, texts in (
                ("name", [e.name]),
                ("aliases", e.aliases),
                ("description", [e.description or ""]),
                ("goals", e.goals),
            ):
                for text in texts:
                    hits = sorted(w for w in words if w and w in text and _names(text, w))
                    if hits:
                        hit = hits[0]
                        raise IntelError(
                            f"{_where(self.source, actor.line)}: actor {e.name!r}: `{field_name}` "
                            f"names the local id {hit!r}; local campaign and account ids are "
                            "never shared"
                        )


def _names(text: str, word: str) -> bool:
    """``word`` occurs in ``text`` as a whole token (not inside a longer id or word)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def _where(source: str, line: int | None) -> str:
    return source if line is None else f"{source}:{line}"


def load_actors(path: Path) -> Actors:
    """Read and check an actors file; ``IntelError`` (one line: file, line, key) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise IntelError(f"{path}: not UTF-8 text") from None
    return actors_from_text(text, str(path))


def actors_from_text(text: str, source: str = "<text>") -> Actors:
    """Parse and check an actors file's text; errors name ``source`` and the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise IntelError(
            f"{_where(source, line)}: not YAML: {_flat(exc.problem or str(exc))}"
        ) from None
    except yaml.YAMLError as exc:
        raise IntelError(f"{source}: not YAML: {_flat(str(exc))}") from None
    if not isinstance(node, yaml.MappingNode):
        raise IntelError(f"{source}: must be a mapping with an `actors:` list")
    _no_duplicates(node, (), source)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise IntelError(f"{source}: not YAML: {_flat(str(exc))}") from None
    finally:
        loader.dispose()
    try:
        parsed = ActorsFile.model_validate(data)
    except ValidationError as exc:
        raise _error(exc, source, node) from None
    out: list[Actor] = []
    names: dict[str, int | None] = {}
    attributed: dict[str, tuple[str, int | None]] = {}
    for i, entry in enumerate(parsed.actors):
        line = _locate(node, ("actors", i), key=False)
        key = entry.name.casefold()
        if key in names:
            raise IntelError(
                f"{_where(source, line)}: actor {entry.name!r} is listed twice (also at line "
                f"{names[key]}); list all its campaigns under one entry"
            )
        names[key] = line
        lines: dict[str, int | None] = {}
        for j, cid in enumerate(entry.campaigns):
            at = _locate(node, ("actors", i, "campaigns", j), key=False)
            if cid in attributed:
                other, first = attributed[cid]
                raise IntelError(
                    f"{_where(source, at)}: campaign {cid!r} is attributed to {other!r} "
                    f"(line {first}) and to {entry.name!r}: one actor per campaign"
                )
            attributed[cid] = (entry.name, at)
            lines[cid] = at
        out.append(Actor(entry, key, line, lines))
    return Actors(source, tuple(out))


def _no_duplicates(node: yaml.Node, path: Loc, source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; an actors file must not."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                raise IntelError(
                    f"{source}:{line}: `{_dotted((*path, name))}`: duplicate key "
                    f"(first at line {seen[name]})"
                )
            seen[name] = line
            _no_duplicates(value, (*path, name), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicates(item, (*path, i), source)


def _error(exc: ValidationError, source: str, node: yaml.Node) -> IntelError:
    """The first problem in file order, with its line and dotted key."""
    errors = exc.errors(include_url=False)
    found = []
    for i, err in enumerate(errors):
        line = _locate(node, err["loc"], key=err["type"] in ("extra_forbidden", "missing"))
        found.append((err["type"] == "missing", line or 0, i, err))
    _, line, _, err = min(found, key=lambda f: f[:3])
    message = _describe(err)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    key = _dotted(err["loc"])
    return IntelError(f"{_where(source, line or None)}: " + (f"`{key}`: " if key else "") + message)


def _describe(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]), list(ActorEntry.model_fields), n=1)
        return "unknown key" + (f" (did you mean `{close[0]}`?)" if close else "")
    if err["type"] == "missing":
        return "missing required key"
    if err["type"] == "too_short":
        return "must not be empty"
    text = _flat(err["msg"]).removeprefix("Value error, ")
    text = text[:1].lower() + text[1:]
    if err["type"] == "value_error":
        return text
    return f"{text} (got {_show(err['input'])})"


def _locate(node: yaml.Node, loc: Loc, *, key: bool) -> int | None:
    """Line of the key (``key``) or the value that ``loc`` points at, as far as it exists."""
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


__all__ = ["Actor", "ActorEntry", "Actors", "actors_from_text", "load_actors"]
