"""Signed envelopes: accepted when intact; rejected, with a logged reason, otherwise."""

from __future__ import annotations

import copy
import logging
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distillwatch.share.errors import RejectedBundleError
from distillwatch.share.sign import Signer, sign, verify
from tests.share.test_export import assert_private, export
from tests.share.world import CANARY_CARD, NOW, provider_a

KEY_A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY_B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
SIGNERS = {"member-a": Signer("member-a", KEY_A.public_key())}


@pytest.fixture(scope="module")
def envelope() -> dict[str, Any]:
    return sign(export(provider_a()), "member-a", KEY_A, signed_at=NOW,
                expires=NOW + timedelta(days=7))  # fmt: skip


def rejected(env: Any, reason: str, caplog: pytest.LogCaptureFixture, **kw: Any) -> None:
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="distillwatch.share"),
        pytest.raises(RejectedBundleError) as info,
    ):
        verify(env, kw.pop("signers", SIGNERS), now=kw.pop("now", NOW), **kw)
    assert info.value.reason == reason
    assert any(reason in r.getMessage() for r in caplog.records)


def test_intact_envelope_verifies(envelope: dict[str, Any]) -> None:
    signer, bundle = verify(copy.deepcopy(envelope), SIGNERS, now=NOW + timedelta(days=1))
    assert signer.member == "member-a"
    assert bundle == envelope["bundle"]
    assert_private(str(envelope))


def test_unsigned(envelope: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    rejected(envelope["bundle"], "unsigned", caplog)
    env = copy.deepcopy(envelope)
    del env["signature"]
    rejected(env, "unsigned", caplog)


def test_tampered(envelope: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    env = copy.deepcopy(envelope)
    ind = next(o for o in env["bundle"]["objects"] if o["type"] == "indicator")
    ind["confidence"] = 1
    rejected(env, "tampered", caplog)
    env = copy.deepcopy(envelope)
    env["expires"] = "2030-01-01T00:00:00.000Z"  # a longer life is tampering too
    rejected(env, "tampered", caplog)
    env = copy.deepcopy(envelope)
    env["bundle"]["objects"].pop()
    rejected(env, "tampered", caplog)


def test_expired_and_future(envelope: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    rejected(envelope, "expired", caplog, now=NOW + timedelta(days=8))
    rejected(envelope, "not-yet-valid", caplog, now=NOW - timedelta(hours=1))


def test_unknown_signer(envelope: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    rejected(envelope, "unknown-signer", caplog, signers={})
    impostor = {"member-a": Signer("member-a", KEY_B.public_key())}
    rejected(envelope, "unknown-signer", caplog, signers=impostor)
    forged = sign(envelope["bundle"], "member-a", KEY_B, signed_at=NOW,
                  expires=NOW + timedelta(days=1))  # fmt: skip
    rejected(forged, "unknown-signer", caplog)


def test_replayed(envelope: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    seen: set[str] = set()
    verify(envelope, SIGNERS, now=NOW, seen=seen)
    rejected(envelope, "replayed", caplog, seen=seen)


def test_objects_claiming_another_creator(caplog: pytest.LogCaptureFixture) -> None:
    bundle = export(provider_a())  # created by member-a ...
    env = sign(bundle, "member-b", KEY_B, signed_at=NOW, expires=NOW + timedelta(days=1))
    signers = {"member-b": Signer("member-b", KEY_B.public_key())}
    rejected(env, "wrong-creator", caplog, signers=signers)  # ... but signed by member-b


def test_privacy_checker_catches_a_leak() -> None:
    with pytest.raises(AssertionError):
        assert_private(f"x {CANARY_CARD.lower()} y")
