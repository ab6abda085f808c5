"""The ``distillwatch`` indicator pattern language (STIX ``pattern_type: distillwatch``).

A pattern is one line: a *form*, then ``name=value`` fields separated by single spaces; values
never contain spaces. Version 1 has three forms (the third in ``rules``)::

    keyed-hash v=1 kind=<ip|net|card|email_domain|user_agent> alg=hmac-sha256-128
               group=<sharing group> epoch=<YYYY-Www> digest=<32 hex>
    scaffold-sketch v=1 format=minhash-blake2b-v1 edge=<head|tail> chars=<16..120>
               threshold=<0..1> group=<sharing group> epoch=<YYYY-Www>
               sketch=<base64, 64 × uint32 BE>

A keyed hash matches a local value when ``HMAC-SHA256(K(group, epoch), kind ‖ 0x00 ‖
normalised value)[:16]`` equals ``digest``; a sketch matches a local prompt when the
estimated Jaccard similarity of its sketch and the sketch of the first (``head``) or last
(``tail``) ``chars`` characters of the local prompt, folded, is at least ``threshold``
(``distillwatch.share.keys`` defines K, the normalisation and the sketch). The third form,
``behaviour-rule``, is a detection rule over signals (``distillwatch.share.rules``). Unknown forms,
versions, algorithms or formats are rejected, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from distillwatch.share.errors import IntelError
from distillwatch.share.keys import (
    KEYED_HASH_ALG,
    KINDS,
    MIN_SCAFFOLD,
    SKETCH_EDGE,
    SKETCH_FORMAT,
    Sketch,
    epoch_start,
)
from distillwatch.share.rules import BehaviourRule, parse_rule

PATTERN_TYPE: Final = "distillwatch"
_HEX = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, slots=True)
class KeyedHash:
    kind: str
    group: str
    epoch: str
    digest: str

    def render(self) -> str:
        return (
            f"keyed-hash v=1 kind={self.kind} alg={KEYED_HASH_ALG} group={self.group} "
            f"epoch={self.epoch} digest={self.digest}"
        )


@dataclass(frozen=True, slots=True)
class ScaffoldSketch:
    edge: str
    chars: int
    threshold: float
    group: str
    epoch: str
    sketch: Sketch

    def render(self) -> str:
        return (
            f"scaffold-sketch v=1 format={SKETCH_FORMAT} edge={self.edge} chars={self.chars} "
            f"threshold={self.threshold:.2f} group={self.group} epoch={self.epoch} "
            f"sketch={self.sketch.encode()}"
        )


def group_name(group: str) -> str:
    """``group`` if it is a valid sharing-group name (1-64 of ``A-Za-z0-9._-``)."""
    if not _NAME.match(group):
        raise IntelError(f"invalid sharing-group name {group!r} (1-64 of A-Za-z0-9._-)")
    return group


def parse(pattern: str) -> KeyedHash | ScaffoldSketch | BehaviourRule:
    """A pattern's parsed form; ``IntelError`` naming what is wrong.

    >>> p = parse("keyed-hash v=1 kind=ip alg=hmac-sha256-128 group=g epoch=2026-W48 "
    ...           "digest=" + "ab" * 16)
    >>> p.kind, p.epoch
    ('ip', '2026-W48')
    >>> parse(p.render()) == p
    True
    """
    form, _, rest = pattern.partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(" "):
        name, eq, value = part.partition("=")
        if not eq or not value or name in fields:
            raise IntelError(f"bad pattern field {part!r}")
        fields[name] = value
    if fields.get("v") != "1":
        raise IntelError(f"unsupported pattern version {fields.get('v')!r}")
    group = group_name(fields.get("group", ""))
    if form == "behaviour-rule":
        _expect(fields, {"v", "group", "min_exchanges", "all"})
        return parse_rule(fields)
    epoch = fields.get("epoch", "")
    epoch_start(epoch)
    if form == "keyed-hash":
        _expect(fields, {"v", "kind", "alg", "group", "epoch", "digest"})
        if fields["alg"] != KEYED_HASH_ALG:
            raise IntelError(f"unsupported keyed-hash algorithm {fields['alg']!r}")
        if fields["kind"] not in KINDS:
            raise IntelError(f"unknown keyed-hash kind {fields['kind']!r}")
        if not _HEX.match(fields["digest"]):
            raise IntelError("digest must be 32 lower-case hex characters")
        return KeyedHash(fields["kind"], group, epoch, fields["digest"])
    if form == "scaffold-sketch":
        _expect(fields, {"v", "format", "edge", "chars", "threshold", "group", "epoch", "sketch"})
        if fields["format"] != SKETCH_FORMAT:
            raise IntelError(f"unsupported sketch format {fields['format']!r}")
        if fields["edge"] not in ("head", "tail"):
            raise IntelError(f"edge must be head or tail, not {fields['edge']!r}")
        try:
            threshold = float(fields["threshold"])
        except ValueError:
            threshold = -1.0
        if not 0.0 < threshold <= 1.0:
            raise IntelError(f"threshold must be in (0, 1], not {fields['threshold']!r}")
        chars = int(fields["chars"]) if fields["chars"].isdigit() else 0
        if not MIN_SCAFFOLD <= chars <= SKETCH_EDGE:
            raise IntelError(f"chars must be in {MIN_SCAFFOLD}..{SKETCH_EDGE}")
        sketch = Sketch.decode(fields["sketch"])
        return ScaffoldSketch(fields["edge"], chars, threshold, group, epoch, sketch)
    raise IntelError(f"unknown pattern form {form!r}")


def _expect(fields: dict[str, str], names: set[str]) -> None:
    if set(fields) != names:
        missing, extra = names - set(fields), set(fields) - names
        raise IntelError(f"pattern fields: missing {sorted(missing)}, unexpected {sorted(extra)}")
