"""Keyed forms: rotation, normalisation, sketches."""

from __future__ import annotations

import hashlib

import pytest

from distillwatch.share.errors import IntelError
from distillwatch.share.keys import GroupKeyer, Sketch, derive_key, edge_text, epoch_id, fold
from tests.share.world import NOW, SECRET


def test_same_epoch_same_digest_other_epoch_other_digest() -> None:
    a = GroupKeyer(SECRET, "g", "2026-W48")
    again = GroupKeyer(SECRET, "g", "2026-W48")
    later = GroupKeyer(SECRET, "g", "2026-W49")
    for kind, value in [("ip", "203.0.113.7"), ("card", "pm_1"), ("email_domain", "x.io")]:
        assert a.digest(kind, value) == again.digest(kind, value)
        assert a.digest(kind, value) != later.digest(kind, value)


def test_other_group_or_secret_gives_other_digests() -> None:
    base = GroupKeyer(SECRET, "g", "2026-W48").digest("ip", "203.0.113.7")
    assert GroupKeyer(SECRET, "h", "2026-W48").digest("ip", "203.0.113.7") != base
    assert GroupKeyer(b"\x01" * 32, "g", "2026-W48").digest("ip", "203.0.113.7") != base


def test_digest_is_keyed_not_a_plain_hash() -> None:
    d = GroupKeyer(SECRET, "g", "2026-W48").digest("ip", "203.0.113.7")
    assert d is not None
    for h in (hashlib.sha256, hashlib.md5, hashlib.sha1):
        assert not h(b"203.0.113.7").hexdigest().startswith(d)
        assert not h(b"ip\x00203.0.113.7").hexdigest().startswith(d)


def test_kinds_are_domain_separated_and_normalised() -> None:
    k = GroupKeyer(SECRET, "g", "2026-W48")
    assert k.digest("ip", "203.0.113.7") != k.digest("net", "203.0.113.7")
    assert k.digest("net", "203.0.113.7") == k.digest("net", "203.0.113.200")
    assert k.digest("net", "2001:db8:1:2::1") == k.digest("net", "2001:db8:1:ffff::9")
    assert k.digest("email_domain", "Example.COM") == k.digest("email_domain", "@example.com")
    assert k.digest("ip", "not an ip") is None


def test_epoch_ids_and_bad_input() -> None:
    assert epoch_id(NOW) == "2026-W48"
    with pytest.raises(IntelError, match="epoch"):
        derive_key(SECRET, "g", "week 48", "hash")
    with pytest.raises(IntelError, match="16 bytes"):
        derive_key(b"short", "g", "2026-W48", "hash")
    with pytest.raises(IntelError, match="kind"):
        GroupKeyer(SECRET, "g", "2026-W48").digest("phone", "123")


def test_sketch_similarity_tracks_text_similarity_and_key() -> None:
    k = GroupKeyer(SECRET, "g", "2026-W48")
    a = k.sketch(fold("You are a meticulous grader: score the answer below from 1 to 10"))
    b = k.sketch(fold("You are a meticulous grader: rate the answer below from 1 to 10"))
    c = k.sketch(fold("Translate this sentence into French, keeping the original tone"))
    assert a.similarity(b) > 0.4 > a.similarity(c)
    other = GroupKeyer(SECRET, "g", "2026-W49").sketch(fold("You are a meticulous grader"))
    assert other != k.sketch(fold("You are a meticulous grader"))
    assert Sketch.decode(a.encode()) == a
    with pytest.raises(IntelError):
        Sketch.decode("AAAA")


def test_cut_sketches_equal_sketches_of_the_cuts() -> None:
    k = GroupKeyer(SECRET, "g", "2026-W48")
    prompt = "Plan the steps for the task below and call tools as needed. Task: book a flight"
    head = edge_text(prompt, "head")
    tail = edge_text(prompt, "tail")
    for n in (20, 41, len(head)):
        assert k.cut_sketches(head, "head", [n])[n] == k.sketch(head[:n])
        assert k.cut_sketches(tail, "tail", [n])[n] == k.sketch(tail[-n:])
    assert k.cut_sketches(head, "head", [500]) == {}
