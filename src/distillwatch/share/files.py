"""File-level export and import: what ``distillwatch intel export|import|keygen`` run.

Paths in, files out, every failure an ``IntelError`` with one line to print. The log is read
once, in file order (the collector does not need time order). ``receive`` (verify received
envelopes) and ``write_sightings`` are shared by ``intel import``, ``scan --intel`` and the
gateway's bundle folder (``share.feed``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillwatch.attribute.campaigns import read_campaigns
from distillwatch.clock import SystemClock, to_datetime
from distillwatch.log import read_accounts, read_exchanges, read_verdicts
from distillwatch.records import Account
from distillwatch.share.collect import Collector, CollectRules, acted_accounts
from distillwatch.share.errors import IntelError, RejectedBundleError
from distillwatch.share.export import ExportConfig, ExportStats, build_bundle
from distillwatch.share.match import IntelIndex, IntelMatcher
from distillwatch.share.sign import (
    load_private,
    parse_ts,
    private_pem,
    public_b64,
    sign,
    verify,
)
from distillwatch.share.trust import TrustPolicy, load_members
from distillwatch.signals import create_signals


def read_group_secret(path: Path) -> bytes:
    """The sharing group's secret: a file holding at least 32 hex characters."""
    try:
        text = path.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise IntelError(f"{path}: the group secret must be hex text") from None
    if len(secret) < 16:
        raise IntelError(f"{path}: the group secret must be at least 16 bytes (32 hex)")
    return secret


def _write_private(path: Path, data: bytes, force: bool) -> None:
    if path.exists() and not force:
        raise IntelError(f"{path} exists; refusing to overwrite a key (use --force)")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise IntelError(f"cannot write {path}: {exc.strerror or exc}") from None


def keygen_member(member: str, out: Path, force: bool = False) -> tuple[Path, str]:
    """A new Ed25519 signing key for ``member`` in ``out``; returns its path and public key."""
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    path = out / f"{member}.key"
    _write_private(path, private_pem(key), force)
    pub = public_b64(key.public_key())
    (out / f"{member}.pub").write_text(pub + "\n", encoding="ascii")
    return path, pub


def keygen_group(path: Path, force: bool = False) -> None:
    """A new 32-byte sharing-group secret, as hex, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, (secrets.token_hex(32) + "\n").encode(), force)


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise IntelError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def export_files(
    *,
    campaigns: Path,
    log: Path,
    accounts: Path | None,
    verdicts: Path | None,
    config: ExportConfig,
    key: Path,
    out: Path,
    now: datetime,
    ttl: timedelta = timedelta(days=7),
    rules: CollectRules | None = None,
    stix_out: Path | None = None,
) -> ExportStats:
    """Export the campaigns of a scanned log as a signed envelope (and the bare bundle)."""
    private = load_private(key)
    body, stats = build_export(
        campaigns=campaigns,
        log=log,
        accounts=accounts,
        verdicts=verdicts,
        config=config,
        now=now,
        rules=rules,
    )
    if stix_out is not None:
        write_json(stix_out, body)
    write_json(out, sign(body, config.member, private, signed_at=now, expires=now + ttl))
    return stats


def build_export(
    *,
    campaigns: Path,
    log: Path,
    accounts: Path | None,
    verdicts: Path | None,
    config: ExportConfig,
    now: datetime,
    rules: CollectRules | None = None,
) -> tuple[dict[str, Any], ExportStats]:
    """The unsigned STIX bundle (as JSON) of a scanned log's campaigns, and what it holds."""
    try:
        camps = read_campaigns(campaigns)
    except OSError as exc:
        raise IntelError(f"cannot read {campaigns}: {exc.strerror or exc}") from None
    accts: dict[str, Account] = read_accounts(accounts) if accounts is not None else {}
    vs = read_verdicts(verdicts) if verdicts is not None else []
    # accounts acted on share their own attributes too, in a campaign or not (docs/intel.md)
    collector = Collector(
        {c.campaign_id: c.accounts for c in camps}, accts, rules, acted=acted_accounts(vs)
    )
    collector.run(lambda: read_exchanges(log))
    bundle, stats = build_bundle(camps, collector, config, now=now, verdicts=vs)
    return json.loads(bundle.serialize()), stats


@dataclass
class ImportResult:
    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    matches: int = 0
    sightings: int = 0


def load_envelope(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise RejectedBundleError("malformed", f"{path} is not JSON") from None


@dataclass
class ReceivedIntel:
    """Received bundles that passed verification (with their signer), and those rejected."""

    policy: TrustPolicy
    group_secret: bytes
    now: datetime
    """When they were verified: indicators already expired then are not indexed."""
    bundles: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def accepted(self) -> list[str]:
        """The signer of each accepted bundle."""
        return [member for member, _ in self.bundles]

    def index(self) -> IntelIndex:
        """A fresh index of every accepted bundle (its time starts at ``now``)."""
        index = IntelIndex(self.policy.group, self.group_secret)
        for member, bundle in self.bundles:
            index.add_bundle(member, bundle, now=self.now)
        return index

    def matcher(self, accounts: Mapping[str, Account] | None = None) -> IntelMatcher:
        """A new matcher over a fresh index (``attach`` it to an engine)."""
        return IntelMatcher(self.index(), self.policy, accounts)


def receive(
    envelopes: Sequence[Path],
    *,
    policy: TrustPolicy,
    group_secret: bytes,
    now: datetime,
    seen: set[str] | None = None,
) -> ReceivedIntel:
    """Verify signed envelope files against the members' keys at ``now``: a rejected one is
    logged and kept with its reason (``sign.verify``), never fatal; an unreadable file is
    (``IntelError``). ``seen``: bundle ids accepted before (replay protection across calls)."""
    got = ReceivedIntel(policy, group_secret, now)
    seen = set() if seen is None else seen
    for path in envelopes:
        try:
            signer, bundle = verify(load_envelope(path), policy.signers, now=now, seen=seen)
        except RejectedBundleError as exc:
            got.rejected.append((path, str(exc)))
            continue
        got.bundles.append((signer.member, bundle))
    return got


def load_intel(
    envelopes: Sequence[Path], *, members: Path, group_secret: Path, now: datetime
) -> ReceivedIntel:
    """``receive`` with the members file and the group secret read from their paths;
    ``IntelError`` when not one envelope is valid (naming each one's reason)."""
    got = receive(
        envelopes,
        policy=load_members(members),
        group_secret=read_group_secret(group_secret),
        now=now,
    )
    if not got.bundles:
        why = "; ".join(f"{path}: {reason}" for path, reason in got.rejected)
        raise IntelError(f"no valid intel bundle ({why})")
    return got


def write_sightings(
    path: Path, matcher: IntelMatcher, *, member: str | None, key: Path | None, now: datetime
) -> int:
    """The STIX sightings of a matcher's matches as an envelope signed by ``member`` (for
    the publishers); returns how many sightings. ``path`` an existing folder: one envelope
    per publisher there (``publishers.file_name``), as the gateway writes them; none when
    nothing matched."""
    if member is None or key is None:
        raise IntelError("sightings need --member and --key to be signed")
    import stix2

    from distillwatch.share.publishers import file_name, mark, split

    private = load_private(key)
    found = matcher.sightings(member, now)
    publisher_of = {iid: r.member for h in matcher.hits.values() for iid, r in h.refs.items()}
    body = json.loads(stix2.v21.Bundle(objects=found).serialize()) if found else _empty_bundle()
    mark(body["objects"], publisher_of)
    expires = now + timedelta(days=7)
    if not path.is_dir():
        write_json(path, sign(body, member, private, signed_at=now, expires=expires))
        return len(found)
    for publisher, objects in sorted(
        split(body["objects"], publisher_of).items(), key=lambda kv: kv[0] or ""
    ):
        one = {**_empty_bundle(), "objects": objects}
        env = sign(one, member, private, signed_at=now, expires=expires)
        write_json(path / file_name(now, publisher), env)
    return len(found)


def import_files(
    envelopes: Sequence[Path],
    *,
    policy: TrustPolicy,
    group_secret: bytes,
    log: Path,
    accounts: Path | None,
    out: Path,
    now: datetime,
    sightings_out: Path | None = None,
    member: str | None = None,
    key: Path | None = None,
    verdicts: Path | None = None,
) -> ImportResult:
    """Verify envelopes, index their indicators, match a local log, write matches (JSONL).

    With ``verdicts`` (a local scan's), behaviour rules are matched against its signal values.
    """
    received = receive(envelopes, policy=policy, group_secret=group_secret, now=now)
    result = ImportResult(accepted=received.accepted, rejected=received.rejected)
    accts = read_accounts(accounts) if accounts is not None else {}
    matcher = received.matcher(accts)
    index = matcher.index
    for batch in read_exchanges(log):
        for e in batch:
            matcher.observe(e, e.ts.timestamp())
    t = now.timestamp()
    if verdicts is not None and index.rules:
        versions = {sig.id: sig.version for sig in create_signals()}
        for v in read_verdicts(verdicts):
            got = v.evidence
            if got is not None:
                matcher.observe_signals(v.account_id, got.signals, versions, got.exchanges, t)
    enc = msgspec.json.Encoder()
    try:
        with out.open("wb") as f:
            for aid in sorted(matcher.hits):
                ev = matcher.evidence(aid, t)
                if ev is None:
                    continue
                result.matches += 1
                row = {
                    "account_id": aid,
                    "evidence": ev.evidence,
                    "ceiling": matcher.ceiling(aid, t).value,
                    "explanation": ev.explanation,
                    "indicators": sorted(r.indicator_id for r in matcher.matched(aid, t)),
                }
                f.write(enc.encode(row) + b"\n")
    except OSError as exc:
        raise IntelError(f"cannot write {out}: {exc.strerror or exc}") from None
    if sightings_out is not None:
        result.sightings = write_sightings(sightings_out, matcher, member=member, key=key, now=now)
    return result


def _empty_bundle() -> dict[str, Any]:
    import uuid

    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": []}


def parse_now(text: str | None) -> datetime:
    """``--now`` (RFC 3339) or the wall clock (the CLI's one clock read)."""
    if text is None:
        return to_datetime(SystemClock().now())
    try:
        return parse_ts(text)
    except ValueError:
        raise IntelError(f"--now must be an RFC 3339 time with a zone, not {text!r}") from None


__all__ = [
    "ImportResult",
    "ReceivedIntel",
    "export_files",
    "import_files",
    "keygen_group",
    "keygen_member",
    "load_intel",
    "parse_now",
    "read_group_secret",
    "receive",
    "write_sightings",
]
