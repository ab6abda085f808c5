"""An exported STIX 2.1 bundle → a MISP event (``intel export --format misp``), with ``misp-stix``.

``misp-stix`` (the optional extra ``distillwatch[misp]``, imported when a conversion runs)
converts the bundle with its ``ExternalSTIX2toMISPParser``: the campaign and the ATLAS attack
patterns become galaxy clusters, the member a producer tag, TLP markings ``tlp:*`` tags and
confidences ``misp:confidence-level`` tags. Two things are then put right:

* **our indicators** (``pattern_type: distillwatch``): misp-stix files any pattern it does not
  know as a ``stix2-pattern`` object labelled ``stix 2.1`` and flagged for IDS, which a keyed
  pattern is not. Each becomes a ``text`` attribute holding the pattern line (keyed: nothing
  raw), not for IDS (only a member holding the group secret can match it, with ``intel
  import``), with the indicator's uuid, validity and confidence, its TLP and confidence tags,
  ``distillwatch:pattern`` / ``distillwatch:kind`` tags and the campaign cluster. Equal keyed
  hashes (one group, one epoch) correlate across members' events.
* **event TLP**: misp-stix tags the event with every marking definition nothing references —
  we ship all five TLP 2.0 definitions, so a TLP:RED export came out tagged ``tlp:clear`` — the
  event carries the levels its objects are marked with, and only those.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any, Final

from distillwatch.share.collect import CollectRules
from distillwatch.share.errors import IntelError
from distillwatch.share.export import ExportConfig, ExportStats
from distillwatch.share.files import build_export, write_json
from distillwatch.share.markings import TLP2_IDS
from distillwatch.share.pattern import PATTERN_TYPE, KeyedHash, parse

MISSING: Final = "MISP export needs the extra: pip install 'distillwatch[misp]'"
TLP_TAG: Final = {mid: f"tlp:{level}" for level, mid in TLP2_IDS.items()}
"""TLP 2.0 marking definition id → the MISP ``tlp`` taxonomy tag."""
CATEGORY: Final = {
    "card": "Financial fraud",
    "ip": "Network activity",
    "net": "Network activity",
    "user_agent": "Network activity",
    "email_domain": "Network activity",
    "scaffold": "Payload delivery",
    "rule": "Other",
}
"""Indicator kind → MISP category (each allows ``text`` attributes)."""
_KIND_OF_FORM: Final = {"scaffold-sketch": "scaffold", "behaviour-rule": "rule"}


@dataclass(frozen=True)
class MispStats:
    attributes: int
    campaigns: int
    tlp: tuple[str, ...]


def converter() -> tuple[Any, Any]:
    """misp-stix's ``ExternalSTIX2toMISPParser`` and ``load_stix2_content`` (or a one-line
    ``IntelError`` naming the extra when it is not installed)."""
    try:
        with warnings.catch_warnings():
            # it imports the STIX 1 stack too, whose vendored six warns on Python 3.11
            warnings.simplefilter("ignore", ImportWarning)
            from misp_stix_converter import (  # type: ignore[import-untyped]
                ExternalSTIX2toMISPParser,
            )
            from misp_stix_converter.tools import (  # type: ignore[import-untyped]
                load_stix2_content,
            )
    except ImportError:
        raise IntelError(MISSING) from None
    _backport_find_spec()
    return ExternalSTIX2toMISPParser, load_stix2_content


def _backport_find_spec() -> None:
    """Give the six 1.15 meta-path importer that ``mixbox`` (misp-stix's STIX 1 stack) vendors
    and installs the ``find_spec`` protocol six 1.16 added.

    Without it, every import that no other finder resolves (an optional dependency probed
    with ``try: import``) reaches the old importer, and Python 3.11 warns (``ImportWarning``)
    before raising ``ImportError``: where warnings are errors, the probe breaks.
    """
    for finder in sys.meta_path:
        cls = type(finder)
        if cls.__name__ != "_SixMetaPathImporter" or "find_spec" in vars(cls):
            continue

        def find_spec(
            self: Any, fullname: str, path: Any = None, target: Any = None
        ) -> ModuleSpec | None:
            known = fullname in self.known_modules
            return importlib.util.spec_from_loader(fullname, self) if known else None

        def create_module(self: Any, spec: ModuleSpec) -> Any:
            return self.load_module(spec.name)

        def exec_module(self: Any, module: Any) -> None:
            return None

        for name, method in (
            ("find_spec", find_spec),
            ("create_module", create_module),
            ("exec_module", exec_module),
        ):
            setattr(cls, name, method)


def bundle_to_event(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The MISP event (``{"Event": {...}}``) of a bundle ``export.build_bundle`` made."""
    parser_class, load_stix2_content = converter()
    objects = bundle.get("objects")
    if not isinstance(objects, list):
        raise IntelError("MISP export: not a STIX bundle with objects")
    ours = {
        o["id"].split("--", 1)[1]: o
        for o in objects
        if o.get("type") == "indicator" and o.get("pattern_type") == PATTERN_TYPE
    }
    used = {ref for o in objects for ref in o.get("object_marking_refs", ())}
    tlp = sorted(TLP_TAG[m] for m in used if m in TLP_TAG)
    member = next((o.get("name") for o in objects if o.get("type") == "identity"), None)
    parser = parser_class()
    try:
        parser.load_stix_bundle(load_stix2_content(copy.deepcopy(dict(bundle))))
        parser.parse_stix_bundle(
            single_event=True, title=_title(objects, member, tlp), producer=member, distribution=0
        )
    except Exception as exc:  # misp-stix raises its own and stix2's errors
        raise IntelError(f"MISP export: misp-stix failed: {' '.join(str(exc).split())}") from None
    errors = [e for es in dict(parser.errors).values() for e in es]
    if errors:
        raise IntelError(f"MISP export: misp-stix: {' '.join(str(errors[0]).split())}")
    event = parser.misp_event
    kept = []
    for obj in event.objects:
        indicator = ours.get(obj.uuid)
        if indicator is None or obj.name != "stix2-pattern":
            kept.append(obj)
            continue
        _add_indicator(event, obj, indicator)
    event.objects = kept
    event.tags = [t for t in event.tags if not str(t.name).startswith("tlp:")]
    for tag in tlp:
        event.add_tag(tag)
    modified = [str(o["modified"]) for o in objects if o.get("modified")]
    if modified:
        event.date = datetime.fromisoformat(max(modified).replace("Z", "+00:00")).date()
    out: dict[str, Any] = json.loads(event.to_json())
    return {"Event": out}


def _title(objects: list[dict[str, Any]], member: str | None, tlp: list[str]) -> str:
    n = sum(1 for o in objects if o.get("type") == "campaign")
    level = ", ".join(t.removeprefix("tlp:").upper() for t in tlp) or "no TLP"
    return f"distillwatch: {n} distillation campaign(s) from {member or 'unknown'} (TLP:{level})"


def _add_indicator(event: Any, obj: Any, indicator: Mapping[str, Any]) -> None:
    """Our indicator as a ``text`` attribute, in place of misp-stix's ``stix2-pattern`` object."""
    pattern = str(indicator["pattern"])
    form = pattern.split(" ", 1)[0]
    try:
        parsed = parse(pattern)
        kind = parsed.kind if isinstance(parsed, KeyedHash) else _KIND_OF_FORM.get(form, form)
    except IntelError:  # a form or version this release does not read: kept, not typed
        kind = "unknown"
    source = next((a for a in obj.attributes if a.object_relation == "stix2-pattern"), None)
    comment = (
        f"{indicator.get('name', '')}: distillwatch {form} pattern "
        f"v{indicator.get('pattern_version', '?')}, keyed with the sharing group's secret "
        "(match it with `distillwatch intel import`, not as a literal value); "
        f"confidence {indicator.get('confidence', '?')}; valid "
        f"{indicator.get('valid_from', '?')} to {indicator.get('valid_until', '?')}"
    )
    attr = event.add_attribute(
        "text",
        pattern,
        category=CATEGORY.get(kind, "Other"),
        to_ids=False,
        comment=comment,
        uuid=obj.uuid,
    )
    for bound in ("first_seen", "last_seen"):
        if getattr(obj, bound, None) is not None:
            setattr(attr, bound, getattr(obj, bound))
    for tag in getattr(source, "tags", []):
        attr.add_tag(tag.name)
    attr.add_tag(f'distillwatch:pattern="{form}"')
    attr.add_tag(f'distillwatch:kind="{kind}"')
    for galaxy in getattr(source, "galaxies", []):
        attr.add_galaxy(galaxy)


def export_event(
    *,
    campaigns: Path,
    log: Path,
    accounts: Path | None,
    verdicts: Path | None,
    config: ExportConfig,
    out: Path,
    now: datetime,
    rules: CollectRules | None = None,
    stix_out: Path | None = None,
) -> tuple[ExportStats, MispStats]:
    """Export the campaigns of a scanned log as a MISP event file (and the bare STIX bundle).

    The same bundle ``intel export`` signs, converted; a MISP event is not signed.
    """
    converter()  # a missing extra fails before the log is read
    body, stats = build_export(
        campaigns=campaigns,
        log=log,
        accounts=accounts,
        verdicts=verdicts,
        config=config,
        now=now,
        rules=rules,
    )
    event = bundle_to_event(body)
    if stix_out is not None:
        write_json(stix_out, body)
    write_json(out, event)
    ev = event["Event"]
    tags = tuple(t["name"] for t in ev.get("Tag", []) if t["name"].startswith("tlp:"))
    return stats, MispStats(len(ev.get("Attribute", [])), stats.campaigns, tags)
