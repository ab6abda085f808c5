"""The members file and the trust policy: whose intel counts, and how much.

``members.yaml``::

    group: acme-sharing          # the sharing group (its secret is a separate file)
    corroboration: 2             # distinct members needed before intel alone may act
    solo_evidence: 1.0           # most log-odds one uncorroborated member can add
    max_evidence: 6.0            # most log-odds intel can add, however corroborated
    kinds: {net: 0.3}            # optional: our credit per indicator kind (KIND_WEIGHTS)
    min_support: 0.5             # a member corroborates only with this much belief of its own
    local_min_score: 0.5         # one member + our own score (without intel) this high: act
    members:
      member-b:
        public_key: <base64 of the 32-byte Ed25519 public key>
        weight: 0.8              # 0..1: how far this member's confidence is taken at its word

A match from one member only is *uncorroborated*: it adds at most ``solo_evidence`` (by default
less than the policy needs to throttle from the prior, so on its own it can at most make an
account ``monitor``ed; with local evidence already there, it can tip it), and its ``ceiling``
is ``monitor`` for enforcement points that apply one. ``corroboration`` members agreeing lift
both limits, and so does a *local* signal next to one supporting member: the account's own
score without intel (``IntelMatcher.attach`` computes it) reaching ``local_min_score``, or its
membership in a detected local campaign (``null`` turns local corroboration off). A careless or
malicious member can therefore not get a customer acted on by itself: it needs another member
or our own detection to agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import yaml

from distillwatch.share.errors import IntelError
from distillwatch.share.pattern import group_name
from distillwatch.share.sign import Signer, load_public

Weight = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class MemberEntry(msgspec.Struct, forbid_unknown_fields=True):
    public_key: str
    weight: Weight = 0.5


class MembersFile(msgspec.Struct, forbid_unknown_fields=True):
    group: str
    members: dict[str, MemberEntry]
    corroboration: Annotated[int, msgspec.Meta(ge=1)] = 2
    solo_evidence: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    max_evidence: Annotated[float, msgspec.Meta(ge=0.0)] = 6.0
    kinds: dict[str, Weight] = msgspec.field(default_factory=dict)
    min_support: Weight = 0.5
    local_min_score: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] | None = 0.5


KIND_WEIGHTS: Final = {
    "card": 1.0,
    "ip": 0.8,
    "email_domain": 0.6,
    "scaffold": 0.5,
    "rule": 0.5,
    "net": 0.3,
    "user_agent": 0.2,
}
"""How far the receiver credits an indicator of each kind, whatever confidence its publisher
gave it: a network or client is shared by many innocent customers (proxies, NATs, SDKs), so
no publisher can make one count like a payment card."""


@dataclass(frozen=True)
class TrustPolicy:
    """Members we accept intel from, their weights, and the corroboration rule."""

    group: str
    signers: Mapping[str, Signer]
    weights: Mapping[str, float]
    corroboration: int = 2
    solo_evidence: float = 1.0
    max_evidence: float = 6.0
    kinds: Mapping[str, float] = field(default_factory=lambda: dict(KIND_WEIGHTS))
    min_support: float = 0.5
    """A member corroborates only if its own credited belief (weight × its matches) reaches
    this: a weak match (a shared network) from one member and a strong claim from another are
    not two members agreeing."""
    local_min_score: float | None = 0.5
    """One supporting member corroborates when a local signal agrees: the account's own score
    without intel at least this (0.5 is the shipped policy's ``monitor`` threshold: our own
    detection was already watching it) or its membership in a detected local campaign.
    ``None``: only ``corroboration`` members do."""

    def credit(self, kind: str, confidence: int) -> float:
        """What one indicator says (0-1): its confidence times our weight for its kind.

        >>> TrustPolicy("g", {}, {}).credit("net", 100)
        0.3
        """
        return self.kinds.get(kind, 0.0) * confidence / 100.0

    def combine(
        self, per_member: Mapping[str, float], *, local: bool = False
    ) -> tuple[float, bool]:
        """Log-odds evidence of matches with member → confidence (0-1), and if corroborated.

        ``local``: a local signal agrees (see ``local_min_score``); then one supporting member
        is enough.

        >>> p = TrustPolicy("g", {}, {"a": 1.0, "b": 0.5})
        >>> p.combine({"a": 0.8})
        (1.0, False)
        >>> ev, ok = p.combine({"a": 0.8, "b": 0.8}); round(ev, 2), ok
        (1.0, False)
        >>> ev, ok = p.combine({"a": 0.8, "b": 1.0}); round(ev, 2), ok
        (5.4, True)
        >>> ev, ok = p.combine({"a": 0.8}, local=True); round(ev, 2), ok
        (4.8, True)
        >>> p.combine({"b": 0.8}, local=True)  # b's own belief 0.4 < min_support: a tip
        (1.0, False)
        """
        support = 1.0
        members = 0
        for member, conf in per_member.items():
            w = self.weights.get(member, 0.0) * conf
            support *= 1.0 - w
            members += w >= self.min_support
        belief = 1.0 - support
        corroborated = members >= self.corroboration or (
            local and members >= 1 and self.local_min_score is not None
        )
        ev = self.max_evidence * belief
        return (ev if corroborated else min(ev, self.solo_evidence)), corroborated


def load_members(path: Path) -> TrustPolicy:
    """Load and check a members file; ``IntelError`` naming the file and the problem."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise IntelError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from None
    try:
        f = msgspec.convert(raw, MembersFile)
    except msgspec.ValidationError as exc:
        raise IntelError(f"{path}: {exc}") from None
    group_name(f.group)
    signers = {}
    for name, entry in f.members.items():
        group_name(name)
        try:
            signers[name] = Signer(name, load_public(entry.public_key))
        except IntelError as exc:
            raise IntelError(f"{path}: member {name}: {exc}") from None
    return TrustPolicy(
        group=f.group,
        signers=signers,
        weights={n: e.weight for n, e in f.members.items()},
        corroboration=f.corroboration,
        solo_evidence=f.solo_evidence,
        max_evidence=f.max_evidence,
        kinds={**KIND_WEIGHTS, **f.kinds},
        min_support=f.min_support,
        local_min_score=f.local_min_score,
    )
