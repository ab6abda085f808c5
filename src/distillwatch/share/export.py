"""Campaigns → a STIX 2.1 bundle of privacy-preserving indicators (built with ``stix2``).

The bundle holds: the member's identity; the five TLP 2.0 marking definitions; the ATLAS
attack patterns (AML.T0024.002 Extract AI Model, AML.T0008.005 AI Service Proxies, each
citing case study AML.CS0056); one ``campaign`` per detected campaign (named by a keyed
token, never its local id or accounts) that ``uses`` both patterns; and its indicators
(``pattern_type: distillwatch``, see ``pattern``: keyed hashes, scaffold sketches and, with
verdicts, a behaviour rule) each ``indicates`` the campaign, with
``confidence``, ``valid_from`` (the epoch's start) and ``valid_until`` (export time + the
kind's lifetime). With an analyst's actors file (``actors``), one ``intrusion-set`` per actor
that exported campaigns are ``attributed-to``. Every object the member creates carries
``created_by_ref`` and the chosen TLP marking. Ids are deterministic (UUIDv5), so re-exports
deduplicate at the receiver.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import stix2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from distillwatch.attribute.campaigns import Campaign
from distillwatch.records import Verdict
from distillwatch.share.actors import Actor, Actors
from distillwatch.share.collect import Collector
from distillwatch.share.errors import IntelError
from distillwatch.share.keys import GroupKeyer, epoch_id, epoch_start
from distillwatch.share.markings import TECHNIQUES, TLP2_IDS, all_tlp2, attack_pattern
from distillwatch.share.pattern import PATTERN_TYPE, KeyedHash, ScaffoldSketch, group_name
from distillwatch.share.rules import BehaviourRule, derive_rule
from distillwatch.share.sign import identity_id
from distillwatch.signals import create_signals

KIND_RELIABILITY: Final = {
    "card": 1.0,
    "ip": 0.9,
    "email_domain": 0.7,
    "net": 0.6,
    "scaffold": 0.6,
    "user_agent": 0.5,
    "rule": 0.5,
}
"""How much an indicator of each kind says about its holder, relative to the campaign."""
LIFETIME: Final = {
    "card": timedelta(days=90),
    "email_domain": timedelta(days=30),
    "scaffold": timedelta(days=30),
    "user_agent": timedelta(days=14),
    "ip": timedelta(days=7),
    "net": timedelta(days=7),
    "rule": timedelta(days=30),
}
RULE_MIN_EXCHANGES: Final = 20
"""A rule never asks for more exchanges than this (the shipped policy's ``min_exchanges``)."""
SKETCH_THRESHOLD: Final = 0.9
"""Near-exact: the exporter checks its own customers for the exact scaffold only, so a looser
match at the receiver would reach phrases nobody checked."""
_NS: Final = uuid.UUID("c4a3e2f1-7d6b-5a49-8e3c-2b1a0f9e8d7c")
MEMBER_CREATED: Final = "2025-01-01T00:00:00.000Z"
OBJECTIVE: Final = (
    "Adversarial distillation: harvest a model's outputs through its API to train a copy."
)


@dataclass(frozen=True)
class ExportConfig:
    """Who exports, for which sharing group, under which TLP level."""

    member: str
    group: str
    group_secret: bytes
    tlp: str = "amber"
    epoch: str | None = None
    """Key epoch (default: the export time's ISO week)."""
    actors: Actors | None = None
    """The analyst's attribution of local campaigns to actors (``actors.load_actors``)."""

    def __post_init__(self) -> None:
        group_name(self.group)
        group_name(self.member)
        if self.tlp not in TLP2_IDS:
            raise IntelError(f"unknown TLP level {self.tlp!r}; one of: {', '.join(TLP2_IDS)}")


ACTED_CONFIDENCE: Final = 80
"""An acted-on account's confidence without its verdict's score (the shipped policy's
``throttle`` threshold: the member was at least this sure when it acted)."""


@dataclass
class ExportStats:
    campaigns: int = 0
    indicators: dict[str, int] = field(default_factory=dict)
    account_indicators: int = 0
    """Of ``indicators``, those shared for an acted-on account (not already a campaign's)."""
    actors: int = 0
    """Intrusion sets exported (actors with at least one exported campaign)."""
    attributed: int = 0
    """Exported campaigns attributed to one of them."""


def campaign_token(secret: bytes, group: str, member: str, campaign_id: str) -> str:
    """A stable keyed token for a local campaign id (never the id itself)."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"distillwatch-intel-ids", info=group.encode()
    ).derive(secret)
    return hmac.digest(key, f"{member}\x00{campaign_id}".encode(), "sha256")[:8].hex()


def intrusion_set_id(group: str, member: str, actor_key: str) -> str:
    """The stable id of a member's intrusion set for an actor (``Actor.key``: its name,
    whitespace collapsed and case-folded). Unkeyed, unlike a campaign's token: the name is
    analyst-written and published in the object anyway."""
    return f"intrusion-set--{uuid.uuid5(_NS, f'{identity_id(member)}|{group}|{actor_key}')}"


def _confidence(campaign: Campaign, scores: Mapping[str, float]) -> int:
    """Campaign confidence (0-100): its members' mean verdict score, else its acted share."""
    got = [scores[a] for a in campaign.accounts if a in scores]
    value = sum(got) / len(got) if got else campaign.acted / max(1, campaign.size)
    return max(0, min(100, round(100 * value)))


def build_bundle(
    campaigns: Sequence[Campaign],
    collector: Collector,
    config: ExportConfig,
    *,
    now: datetime,
    verdicts: Sequence[Verdict] = (),
) -> tuple[stix2.v21.Bundle, ExportStats]:
    """The STIX bundle of every campaign's shareable indicators, at ``now``."""
    epoch = config.epoch or epoch_id(now)
    start = epoch_start(epoch)
    if start > now:
        raise IntelError(f"epoch {epoch} starts after the export time")
    keyer = GroupKeyer(config.group_secret, config.group, epoch)
    me = identity_id(config.member)
    marking = [TLP2_IDS[config.tlp]]
    common: dict[str, Any] = {"created_by_ref": me, "object_marking_refs": marking}
    identity = stix2.v21.Identity(
        id=me,
        created=MEMBER_CREATED,
        modified=MEMBER_CREATED,
        name=config.member,
        identity_class="organization",
        sectors=["technology"],
        description=f"distillwatch intel member of sharing group {config.group}",
        **common,
    )
    patterns = [attack_pattern(t) for t in TECHNIQUES]
    objects: list[Any] = [identity, *all_tlp2(), *patterns]
    scores = {v.account_id: v.score for v in verdicts}
    if config.actors is not None:
        config.actors.check({c.campaign_id for c in campaigns})
        local = {c.campaign_id for c in campaigns} | collector.acted
        config.actors.check_private(local.union(*(c.accounts for c in campaigns)))
    rule_of = _rules(campaigns, verdicts, config.group)
    stats = ExportStats()
    emitted: set[str] = set()
    stix_campaign: dict[str, stix2.v21.Campaign] = {}
    """Local campaign id → its STIX campaign."""
    for camp in sorted(campaigns, key=lambda c: c.campaign_id):
        if camp.campaign_id not in collector.intel:
            continue
        token = campaign_token(config.group_secret, config.group, config.member, camp.campaign_id)
        conf = _confidence(camp, scores)
        first = camp.first_seen or start
        last = max(camp.last_seen or now, first)
        c = stix2.v21.Campaign(
            id=f"campaign--{uuid.uuid5(_NS, f'{me}|{token}')}",
            created=min(first, now),
            modified=now,
            name=f"distillation campaign {token}",
            description=(
                f"{camp.size} accounts ({camp.acted} acted on), {camp.exchanges} exchanges; "
                f"linked by {', '.join(sorted(camp.shared_keys)) or 'shared keys'}"
            ),
            objective=OBJECTIVE,
            first_seen=first,
            last_seen=last,
            confidence=conf,
            **common,
        )
        objects.append(c)
        for ap in patterns:
            objects.append(_relationship(me, c.id, "uses", ap.id, start, now, marking))
        stats.campaigns += 1
        attrs, edges = collector.shareable(camp.campaign_id)
        forms: list[tuple[str, KeyedHash | ScaffoldSketch | BehaviourRule]] = []
        for kind in sorted(attrs):
            for value in sorted(attrs[kind]):
                digest = keyer.digest_raw(kind, value).hex()
                forms.append((kind, KeyedHash(kind, config.group, epoch, digest)))
        for edge, text in edges:
            sketch = keyer.sketch(text)
            sk = ScaffoldSketch(edge, len(text), SKETCH_THRESHOLD, config.group, epoch, sketch)
            forms.append(("scaffold", sk))
        rule = rule_of.get(camp.campaign_id)
        if rule is not None:
            forms.append(("rule", rule))
        stix_campaign[camp.campaign_id] = c
        for kind, form in forms:
            pattern = form.render()
            emitted.add(pattern)
            of = f"distillation campaign {token}"
            ind = _indicator(me, kind, pattern, conf, of, (start, now), marking)
            objects.append(ind)
            objects.append(_relationship(me, ind.id, "indicates", c.id, start, now, marking))
            stats.indicators[kind] = stats.indicators.get(kind, 0) + 1
    # accounts acted on, one by one: their campaign's, or (outside one) the technique's
    extract = patterns[0].id
    for pattern, (kind, conf, cid) in sorted(
        _account_forms(collector, keyer, config.group, scores).items()
    ):
        if pattern in emitted:
            continue
        got = stix_campaign.get(cid or "")
        target = extract if got is None else got.id
        of = "an account acted on for distillation"
        ind = _indicator(me, kind, pattern, conf, of, (start, now), marking)
        objects.append(ind)
        objects.append(_relationship(me, ind.id, "indicates", target, start, now, marking))
        stats.indicators[kind] = stats.indicators.get(kind, 0) + 1
        stats.account_indicators += 1
    for actor in config.actors.actors if config.actors is not None else ():
        camps = [stix_campaign[c] for c in actor.campaign_lines if c in stix_campaign]
        if not camps:
            continue  # none of its campaigns exported: nothing to attribute
        iset = _intrusion_set(actor, camps, config, now)
        objects.append(iset)
        for c in sorted(camps, key=lambda c: str(c.id)):
            objects.append(
                _relationship(
                    me,
                    c.id,
                    "attributed-to",
                    iset.id,
                    c.created,
                    now,
                    marking,
                    confidence=actor.entry.confidence,
                )
            )
        stats.actors += 1
        stats.attributed += len(camps)
    bundle = stix2.v21.Bundle(
        objects=objects, id=f"bundle--{uuid.uuid5(_NS, f'{me}|{now.isoformat()}')}"
    )
    return bundle, stats


def _intrusion_set(
    actor: Actor, campaigns: Sequence[stix2.v21.Campaign], config: ExportConfig, now: datetime
) -> stix2.v21.IntrusionSet:
    """An actor's intrusion set: the analyst's description of it, seen from its exported
    campaigns' first to last sighting (or the analyst's earlier ``first_seen``)."""
    e = actor.entry
    first = min([*(c.first_seen for c in campaigns), *([e.first_seen] if e.first_seen else [])])
    last = max(first, *(c.last_seen for c in campaigns))
    optional: dict[str, Any] = {
        "aliases": e.aliases or None,
        "description": e.description,
        "goals": e.goals or None,
        "resource_level": e.resource_level,
        "primary_motivation": e.primary_motivation,
        "secondary_motivations": e.secondary_motivations or None,
        "confidence": e.confidence,
    }
    return stix2.v21.IntrusionSet(
        id=intrusion_set_id(config.group, config.member, actor.key),
        created=min(first, now),
        modified=now,
        name=e.name,
        first_seen=first,
        last_seen=last,
        created_by_ref=identity_id(config.member),
        object_marking_refs=[TLP2_IDS[config.tlp]],
        **{k: v for k, v in optional.items() if v is not None},
    )


def _indicator(
    me: str,
    kind: str,
    pattern: str,
    conf: int,
    of: str,
    times: tuple[datetime, datetime],
    marking: list[str],
) -> stix2.v21.Indicator:
    """One indicator of ``of`` (a campaign, or an account acted on); ``times``: (epoch start,
    export time)."""
    start, now = times
    return stix2.v21.Indicator(
        id=f"indicator--{uuid.uuid5(_NS, f'{me}|{pattern}')}",
        created=start,
        modified=now,
        name=f"{kind} of {of}",
        description=f"distillwatch {kind} indicator (keyed; see docs/intel.md)",
        indicator_types=["malicious-activity", "attribution"],
        pattern_type=PATTERN_TYPE,
        pattern_version="1",
        pattern=pattern,
        valid_from=start,
        valid_until=now + LIFETIME[kind],
        confidence=round(conf * KIND_RELIABILITY[kind]),
        created_by_ref=me,
        object_marking_refs=marking,
    )


def _account_forms(
    collector: Collector, keyer: GroupKeyer, group: str, scores: Mapping[str, float]
) -> dict[str, tuple[str, int, str | None]]:
    """Pattern → (kind, confidence, local campaign) of every acted-on account's attributes;
    a value two accounts hold keeps the higher confidence."""
    out: dict[str, tuple[str, int, str | None]] = {}
    for aid in sorted(collector.acted):
        score = scores.get(aid)
        conf = ACTED_CONFIDENCE if score is None else max(0, min(100, round(100 * score)))
        cid = collector.member_of.get(aid)
        for kind, values in collector.individual(aid).items():
            for value in values:
                digest = keyer.digest_raw(kind, value).hex()
                pattern = KeyedHash(kind, group, keyer.epoch, digest).render()
                if pattern not in out or out[pattern][1] < conf:
                    out[pattern] = (kind, conf, cid)
    return out


def _rules(
    campaigns: Sequence[Campaign], verdicts: Sequence[Verdict], group: str
) -> dict[str, BehaviourRule]:
    """A behaviour rule per campaign, from the verdicts' signal values (none without them)."""
    if not verdicts:
        return {}
    versions = {s.id: s.version for s in create_signals()}
    member_of = {a: c.campaign_id for c in campaigns for a in c.accounts}
    by_campaign: dict[str, list[Verdict]] = {}
    others = []
    for v in verdicts:
        if v.evidence is None:
            continue
        cid = member_of.get(v.account_id)
        if cid is None:
            others.append(v.evidence.signals)
        else:
            by_campaign.setdefault(cid, []).append(v)
    out = {}
    for cid, vs in by_campaign.items():
        counts = sorted(v.evidence.exchanges for v in vs if v.evidence is not None)
        min_exchanges = min(RULE_MIN_EXCHANGES, counts[len(counts) // 10])
        members = [v.evidence.signals for v in vs if v.evidence is not None]
        rule = derive_rule(members, others, versions, group=group, min_exchanges=min_exchanges)
        if rule is not None:
            out[cid] = rule
    return out


def _relationship(
    me: str,
    source: str,
    rel: str,
    target: str,
    created: datetime,
    now: datetime,
    marking: list[str],
    *,
    confidence: int | None = None,
) -> stix2.v21.Relationship:
    extra = {} if confidence is None else {"confidence": confidence}
    return stix2.v21.Relationship(
        id=f"relationship--{uuid.uuid5(_NS, f'{source}|{rel}|{target}')}",
        created=min(created, now),
        modified=now,
        relationship_type=rel,
        source_ref=source,
        target_ref=target,
        created_by_ref=me,
        object_marking_refs=marking,
        **extra,
    )
