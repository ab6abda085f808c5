"""Ed25519-signed bundle envelopes: sign on export, verify on receipt.

A signed bundle travels as a JSON *envelope*::

    {"format": "distillwatch-signed-bundle/1", "signer": "<member>", "identity": "identity--…",
     "key_id": "<sha256 of the public key, 16 hex>", "signed_at": "…Z", "expires": "…Z",
     "bundle": {<the STIX 2.1 bundle>}, "signature": "<base64 Ed25519 signature>"}

The signature covers the RFC 8785 (JSON Canonicalization Scheme) serialisation of the envelope
without its ``signature`` member — the bundle *and* the signer, times and key id — so nothing
in it can be changed, re-attributed or given a longer life without the signer's key.

``verify`` rejects, with a logged reason: anything that is not an envelope (``unsigned``), an
unknown signer or key (``unknown-signer``), a signature that does not verify (``tampered``),
an envelope past ``expires`` or signed in the future (``expired``, ``not-yet-valid``), a
bundle id seen before (``replayed``) and objects claiming another member as their creator
(``wrong-creator``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Mapping, MutableSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from distillwatch.clock import format_rfc3339 as format_ts
from distillwatch.share.errors import IntelError, RejectedBundleError

ENVELOPE_FORMAT: Final = "distillwatch-signed-bundle/1"
CLOCK_SKEW: Final = timedelta(minutes=5)
_MEMBER_NS: Final = uuid.UUID("6f1f3a8e-2b7c-5d4e-9a0b-3c2d1e0f4a5b")

log = logging.getLogger("distillwatch.share")


def identity_id(member: str) -> str:
    """The deterministic STIX identity id of a member (the same name, the same id).

    >>> identity_id("member-a")
    'identity--ccf4057d-41f4-5095-a7bf-4d09c763f168'
    """
    return f"identity--{uuid.uuid5(_MEMBER_NS, f'distillwatch-member:{member}')}"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_b64(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_public(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its base64 raw form."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        raise IntelError("not an Ed25519 public key (base64 of 32 bytes)") from None


def private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private(path: Path) -> Ed25519PrivateKey:
    """A member's signing key from a PEM (PKCS#8) file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError):
        raise IntelError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IntelError(f"{path}: not an Ed25519 key")
    return key


@dataclass(frozen=True)
class Signer:
    """A member whose envelopes we accept: its name, identity and public key."""

    member: str
    public_key: Ed25519PublicKey

    @property
    def identity(self) -> str:
        return identity_id(self.member)


def canonical(obj: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` (what is signed)."""
    try:
        return rfc8785.dumps(dict(obj))
    except rfc8785.CanonicalizationError as exc:
        raise IntelError(f"cannot canonicalise the bundle: {exc}") from None


def sign(
    bundle: Mapping[str, Any],
    member: str,
    private: Ed25519PrivateKey,
    *,
    signed_at: datetime,
    expires: datetime,
) -> dict[str, Any]:
    """The signed envelope of a STIX bundle (a JSON-ready dict)."""
    env: dict[str, Any] = {
        "format": ENVELOPE_FORMAT,
        "signer": member,
        "identity": identity_id(member),
        "key_id": key_id(private.public_key()),
        "signed_at": format_ts(signed_at),
        "expires": format_ts(expires),
        "bundle": dict(bundle),
    }
    env["signature"] = base64.b64encode(private.sign(canonical(env))).decode()
    return env


def parse_ts(text: str) -> datetime:
    """An aware datetime from RFC 3339 text; ``ValueError`` if it is not one."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("no time zone")
    return dt


def _reject(reason: str, detail: str) -> RejectedBundleError:
    log.warning("intel bundle rejected: %s: %s", reason, detail)
    return RejectedBundleError(reason, detail)


def verify(
    envelope: Any,
    signers: Mapping[str, Signer],
    *,
    now: datetime,
    seen: MutableSet[str] | None = None,
) -> tuple[Signer, dict[str, Any]]:
    """The signer and the bundle of a valid envelope; ``RejectedBundleError`` otherwise.

    ``seen`` (bundle ids already accepted) turns on replay protection: an accepted bundle's
    id is added to it.
    """
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_FORMAT:
        raise _reject("unsigned", "not a distillwatch signed envelope")
    sig = envelope.get("signature")
    if not isinstance(sig, str) or not sig:
        raise _reject("unsigned", "no signature")
    member = envelope.get("signer")
    signer = signers.get(member) if isinstance(member, str) else None
    if signer is None:
        raise _reject("unknown-signer", f"signer {member!r} is not a trusted member")
    if envelope.get("key_id") != key_id(signer.public_key):
        raise _reject("unknown-signer", f"key {envelope.get('key_id')!r} is not {member}'s key")
    body = {k: v for k, v in envelope.items() if k != "signature"}
    try:
        signer.public_key.verify(base64.b64decode(sig, validate=True), canonical(body))
    except (InvalidSignature, ValueError, IntelError):
        raise _reject("tampered", f"signature of {member} does not verify") from None
    if envelope.get("identity") != signer.identity:
        raise _reject("wrong-creator", f"identity does not belong to {member}")
    try:
        signed_at = parse_ts(str(envelope["signed_at"]))
        expires = parse_ts(str(envelope["expires"]))
    except (KeyError, ValueError):
        raise _reject("malformed", "signed_at/expires missing or not RFC 3339") from None
    if expires <= now:
        raise _reject("expired", f"expired {format_ts(expires)}")
    if signed_at > now + CLOCK_SKEW:
        raise _reject("not-yet-valid", f"signed in the future ({format_ts(signed_at)})")
    bundle = envelope.get("bundle")
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        raise _reject("malformed", "no STIX bundle inside")
    for obj in bundle.get("objects") or []:
        creator = obj.get("created_by_ref") if isinstance(obj, dict) else None
        if creator is not None and creator != signer.identity:
            raise _reject("wrong-creator", f"{obj.get('id')} claims creator {creator}")
    bid = str(bundle.get("id"))
    if seen is not None:
        if bid in seen:
            raise _reject("replayed", f"bundle {bid} was accepted before")
        seen.add(bid)
    return signer, bundle
