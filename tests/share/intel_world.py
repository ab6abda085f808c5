"""Received intel for scan and gateway tests: signed bundles naming a receiver's accounts.

Two publishers (member-a, member-c) each detected a campaign paying with the card ``X_CARD``;
member-a also acted on an account paying with ``Y_CARD``. At the
receiver, ``x-corr`` pays with ``X_CARD`` (two members agree: corroborated) and ``y-solo``
with ``Y_CARD`` (one member: uncorroborated); the ``legit-*`` accounts match nothing. Times
are relative to the wall clock, which ``scan --intel`` and the gateway verify against.

Behaviour rules: ``with_rule`` adds a ``RULE`` indicator to a bundle; with ``attacker=True``
the receiver's log also holds ``ATTACKER``, which sends each request from another network
(address churn near 1, every other account's is 0.03) and pays with no published card: only
the rule can match it.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillwatch.attribute.campaigns import Campaign
from distillwatch.clock import format_rfc3339
from distillwatch.records import Account, Exchange
from distillwatch.share.collect import Collector
from distillwatch.share.export import ExportConfig, build_bundle
from distillwatch.share.sign import private_pem, public_b64, sign

GROUP = "scan-group"
SECRET_HEX = "ab" * 32
X_CARD = "pm_intel_xcorr_1111"
Y_CARD = "pm_intel_ysolo_2222"
RECEIVER = ("x-corr", "y-solo", "legit-1", "legit-2")
EXCHANGES = 30
ATTACKER = "z-rule"
RULE_MIN_EXCHANGES = 10
RULE = (
    f"behaviour-rule v=1 group={GROUP} min_exchanges={RULE_MIN_EXCHANGES} "
    "all=network.address_churn@1>=0.8,structure.single_turn@1>=0.9"
)
"""A rotating-proxy operator's behaviour: ``ATTACKER`` satisfies it, no other account does."""


def wall_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _ex(
    prefix: str, account: str, i: int, t0: datetime, ip: str, agent: str = "curl/8"
) -> Exchange:
    return Exchange(
        id=f"{prefix}-{account}-{i:03d}",
        ts=t0 + timedelta(seconds=97 * i + 7 * len(account)),
        account_id=account,
        ip=ip,
        user_agent=agent,
        model="frontier-1",
        request={"messages": [{"role": "user", "content": f"{account} asks question {i}"}]},
        status=200,
        prompt_tokens=12,
        completion_tokens=40,
    )


def bundle(
    member: str, cards: dict[str, str], now: datetime, campaign: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The STIX bundle ``member`` publishes for its accounts acted on, each paying with
    ``cards[account]``; ``campaign``: those of them it detected as one campaign."""
    accounts = {a: Account(account_id=a, payment_fingerprint=c) for a, c in cards.items()}
    t0 = now - timedelta(hours=3)
    exchanges = [
        _ex(member, a, i, t0, "192.0.2.44", "PublisherHarvester/1.0")
        for a in cards
        for i in range(3)
    ]
    camps = []
    if campaign:
        camps.append(
            Campaign(
                campaign_id=f"camp_{member}",
                accounts=list(campaign),
                size=len(campaign),
                acted=len(campaign),
                evidence={"card": 1.0},
                shared_keys={"card": 1},
                first_seen=t0,
                last_seen=t0 + timedelta(minutes=5),
                exchanges=3 * len(campaign),
            )
        )
    col = Collector({c.campaign_id: c.accounts for c in camps}, accounts, acted=list(cards))
    col.run(lambda: [exchanges])
    config = ExportConfig(member=member, group=GROUP, group_secret=bytes.fromhex(SECRET_HEX))
    stix, _ = build_bundle(camps, col, config, now=now)
    out: dict[str, Any] = json.loads(stix.serialize())
    return out


@dataclass
class IntelFiles:
    """Keys, members file, group secret and signed bundles, in one folder."""

    folder: Path
    keys: dict[str, Ed25519PrivateKey]
    members: Path
    secret: Path
    now: datetime

    def signed(
        self,
        member: str,
        stix: dict[str, Any],
        name: str,
        *,
        expires: timedelta = timedelta(days=7),
        key: Ed25519PrivateKey | None = None,
        folder: Path | None = None,
    ) -> Path:
        env = sign(
            stix, member, key or self.keys[member], signed_at=self.now, expires=self.now + expires
        )
        path = (folder or self.folder) / name
        path.write_text(json.dumps(env), encoding="utf-8")
        return path

    def a_bundle(self) -> dict[str, Any]:
        """member-a: a campaign paying with ``X_CARD``, and an account with ``Y_CARD``."""
        cards = {"pa-x1": X_CARD, "pa-x2": X_CARD, "pa-y": Y_CARD}
        return bundle("member-a", cards, self.now, campaign=("pa-x1", "pa-x2"))

    def c_bundle(self) -> dict[str, Any]:
        """member-c: a campaign paying with ``X_CARD``."""
        cards = {"pc-x1": X_CARD, "pc-x2": X_CARD}
        return bundle("member-c", cards, self.now, campaign=("pc-x1", "pc-x2"))

    def with_rule(
        self,
        stix: dict[str, Any],
        *,
        pattern: str = RULE,
        confidence: int = 100,
        valid_until: datetime | None = None,
    ) -> dict[str, Any]:
        """A copy of ``stix`` (a new bundle id) with a behaviour-rule indicator added, shaped
        as its publisher's other indicators and indicating the same target as the first."""
        out = copy.deepcopy(stix)
        out["id"] = f"bundle--{uuid.uuid4()}"
        objects = out["objects"]
        first = next(o for o in objects if o["type"] == "indicator")
        rule = {
            **copy.deepcopy(first),
            "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, pattern + first['id'])}",
            "name": "behaviour rule",
            "pattern": pattern,
            "confidence": confidence,
            "valid_until": format_rfc3339(valid_until or self.now + timedelta(days=30)),
        }
        (rel,) = [
            o for o in objects if o["type"] == "relationship" and o["source_ref"] == first["id"]
        ]
        link = {**rel, "id": f"relationship--{uuid.uuid4()}", "source_ref": rule["id"]}
        objects += [rule, link]
        return out

    @staticmethod
    def rule_ids(stix: dict[str, Any]) -> list[str]:
        return [o["id"] for o in stix["objects"] if "behaviour-rule" in o.get("pattern", "")]

    def key_file(self, member: str) -> Path:
        path = self.folder / f"{member}.key"
        path.write_bytes(private_pem(self.keys[member]))
        return path


POLICY: dict[str, object] = {"max_evidence": 9.0, "solo_evidence": 9.0, "local_min_score": None}
"""A trust policy under which intel alone reaches an action: two members corroborating are
enough to block, and without the ceiling one member's card match would be too."""


def intel_files(folder: Path, **policy: object) -> IntelFiles:
    """Members a and c (weight 0.9), and b (us, for sightings); ``policy``: members.yaml keys
    (solo_evidence, local_min_score, …; default ``POLICY``)."""
    policy = policy or POLICY
    folder.mkdir(parents=True, exist_ok=True)
    keys = {m: Ed25519PrivateKey.generate() for m in ("member-a", "member-b", "member-c")}
    lines = [f"group: {GROUP}"]
    lines += [f"{k}: {'null' if v is None else v}" for k, v in policy.items()]
    lines.append("members:")
    for m in ("member-a", "member-c"):
        lines += [
            f"  {m}:",
            f"    public_key: {public_b64(keys[m].public_key())}",
            "    weight: 0.9",
        ]
    members = folder / "members.yaml"
    members.write_text("\n".join(lines) + "\n", encoding="utf-8")
    secret = folder / "group.secret"
    secret.write_text(SECRET_HEX + "\n", encoding="ascii")
    return IntelFiles(folder, keys, members, secret, wall_now())


def receiver_log(
    folder: Path, now: datetime, *, attacker: bool = False
) -> tuple[Path, Path, list[Exchange]]:
    """The receiver's log (``EXCHANGES`` per account, interleaved, ending before ``now``) and
    accounts file; ``attacker``: ``ATTACKER`` too, each request from another /24."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = now - timedelta(hours=2)
    cards = {"x-corr": X_CARD, "y-solo": Y_CARD}
    names = (*RECEIVER, ATTACKER) if attacker else RECEIVER
    exchanges = sorted(
        (
            _ex("r", a, i, t0, f"100.64.{i}.9" if a == ATTACKER else f"198.51.100.{10 + n}")
            for n, a in enumerate(names)
            for i in range(EXCHANGES)
        ),
        key=lambda e: (e.ts, e.id),
    )
    log = folder / "exchanges.jsonl"
    with log.open("w", encoding="utf-8") as f:
        for e in exchanges:
            f.write(
                json.dumps(
                    {
                        "id": e.id,
                        "ts": e.ts.isoformat().replace("+00:00", "Z"),
                        "account_id": e.account_id,
                        "ip": e.ip,
                        "user_agent": e.user_agent,
                        "model": e.model,
                        "request": e.request,
                        "status": 200,
                        "prompt_tokens": e.prompt_tokens,
                        "completion_tokens": e.completion_tokens,
                    }
                )
                + "\n"
            )
    accounts = folder / "accounts.jsonl"
    with accounts.open("w", encoding="utf-8") as f:
        for a in names:
            row: dict[str, Any] = {"account_id": a, "email_domain": f"{a}.example"}
            if a in cards:
                row["payment_fingerprint"] = cards[a]
            f.write(json.dumps(row) + "\n")
    return log, accounts, exchanges
