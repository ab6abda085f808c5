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
from distillwatch.yamlfile import (
    compose,
    construct,
    did_you_mean,
    locate,
    one_line,
    reject_duplicate_keys,
    show,
    validation_error,
    where,
)

MOTIVATIONS: Final = tuple(vocab.ATTACK_MOTIVATION)
"""STIX 2.1 ``attack-motivation-ov``."""
RESOURCE_LEVELS: Final = tuple(vocab.ATTACK_RESOURCE_LEVEL)
"""STIX 2.1 ``attack-resource-level-ov``."""

Text = Annotated[str, Field(min_length=1, max_length=2000)]


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
                        f"{where(self.source, line)}: actor {actor.entry.name!r}: no campaign "
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
                            f"{where(self.source, actor.line)}: actor {e.name!r}: `{field_name}` "
                            f"names the local id {hit!r}; local campaign and account ids are "
                            "never shared"
                        )


def _names(text: str, word: str) -> bool:
    """``word`` occurs in ``text`` as a whole token (not inside a longer id or word)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


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
    node = compose(text, source, _intel_error, label="not YAML")
    if not isinstance(node, yaml.MappingNode):
        raise IntelError(f"{source}: must be a mapping with an `actors:` list")
    reject_duplicate_keys(node, source, _intel_error)
    data = construct(node, source, _intel_error, label="not YAML", lines=False)
    try:
        parsed = ActorsFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source, _intel_error, node=node, describe=_describe) from None
    out: list[Actor] = []
    names: dict[str, int | None] = {}
    attributed: dict[str, tuple[str, int | None]] = {}
    for i, entry in enumerate(parsed.actors):
        line = locate(node, ("actors", i))
        key = entry.name.casefold()
        if key in names:
            raise IntelError(
                f"{where(source, line)}: actor {entry.name!r} is listed twice (also at line "
                f"{names[key]}); list all its campaigns under one entry"
            )
        names[key] = line
        lines: dict[str, int | None] = {}
        for j, cid in enumerate(entry.campaigns):
            at = locate(node, ("actors", i, "campaigns", j))
            if cid in attributed:
                other, first = attributed[cid]
                raise IntelError(
                    f"{where(source, at)}: campaign {cid!r} is attributed to {other!r} "
                    f"(line {first}) and to {entry.name!r}: one actor per campaign"
                )
            attributed[cid] = (entry.name, at)
            lines[cid] = at
        out.append(Actor(entry, key, line, lines))
    return Actors(source, tuple(out))


def _intel_error(
    message: str, /, *, source: str, line: int | None = None, key: str | None = None
) -> IntelError:
    """The ``yamlfile`` errors of an actors file, as ``IntelError`` (the same one line)."""
    return IntelError(f"{where(source, line, key)}: {message}")


def _describe(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key" + did_you_mean(str(err["loc"][-1]), ActorEntry.model_fields)
    if err["type"] == "missing":
        return "missing required key"
    if err["type"] == "too_short":
        return "must not be empty"
    text = one_line(err["msg"]).removeprefix("Value error, ")
    text = text[:1].lower() + text[1:]
    if err["type"] == "value_error":
        return text
    return f"{text} (got {show(err['input'])})"


__all__ = ["Actor", "ActorEntry", "Actors", "actors_from_text", "load_actors"]
