"""network.address_churn and network.client_churn: rotation of addresses and clients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from distillwatch.records import Exchange, SignalValue
from distillwatch.signals.base import EvalContext
from distillwatch.signals.network import (
    AddressChurn,
    ClientChurn,
    DistinctSketch,
    network_prefix,
)
from tests.factories import exchange


def last(sig: AddressChurn | ClientChurn, stream: Iterable[Exchange]) -> SignalValue:
    st: Any = sig.new_state()
    v = None
    for n, e in enumerate(stream, start=1):
        t = e.ts.timestamp()
        sig.update(st, e, t)
        v = sig.evaluate(st, EvalContext(now=t, account=None, tier="paid", exchanges=n))
    assert v is not None
    return v


def test_a_new_network_per_request_is_a_rotating_proxy() -> None:
    stream = [exchange(i, ip=f"{10 + i % 200}.{i // 200}.{i % 7}.9") for i in range(60)]
    v = last(AddressChurn(), stream)
    assert v.value is not None and v.value > 0.8
    assert 1.0 <= v.evidence <= 1.5


def test_rotation_within_one_subnet_or_one_ipv6_prefix_is_not_churn() -> None:
    pool = [exchange(i, ip=f"203.0.113.{i % 250 + 1}") for i in range(60)]
    assert last(AddressChurn(), pool).evidence == 0.0
    privacy = [exchange(i, ip=f"2001:db8:7:{i:x}::{i + 1:x}") for i in range(60)]
    assert last(AddressChurn(), privacy).evidence == 0.0


def test_a_vpn_user_changing_address_per_session_is_not_churn() -> None:
    stream = [exchange(i, ip=f"198.51.{i // 4}.20") for i in range(60)]  # 4 turns a session
    v = last(AddressChurn(), stream)
    assert v.value == 0.25 and v.evidence == 0.0


def test_a_few_requests_from_a_few_places_are_little_evidence() -> None:
    stream = [exchange(i, ip=f"198.51.{i}.20") for i in range(6)]
    assert last(AddressChurn(), stream).evidence < 0.3
    v = last(AddressChurn(), stream[:4])
    assert not v.available and "fewer than 5" in v.explanation


def test_evidence_is_monotone_in_churn() -> None:
    evidence = []
    for every in (10, 5, 3, 2, 1):  # a new network every `every` requests
        stream = [
            exchange(i, ip=f"100.{(i // every) % 250}.{i // every // 250}.1") for i in range(80)
        ]
        evidence.append(last(AddressChurn(), stream).evidence)
    assert evidence == sorted(evidence) and evidence[-1] > 1.0


@pytest.mark.parametrize(
    ("ip", "prefix"),
    [
        ("192.0.2.55", "192.0.2"),
        ("2001:db8::1", "2001:0db8:0000"),
        ("::ffff:198.51.100.7", "198.51.100"),
        ("fe80::1%eth0", "fe80:0000:0000"),
        ("not-an-ip:", "not-an-ip:"),
    ],
)
def test_network_prefix(ip: str, prefix: str) -> None:
    assert network_prefix(ip) == prefix


def test_sketch_is_exact_when_small_and_bounded_when_large() -> None:
    s = DistinctSketch(16)
    for i in range(12):
        s.add(f"a{i}")
        s.add(f"a{i}")
    assert s.estimate() == 12.0
    for i in range(20_000):
        s.add(f"b{i}")
    assert len(s.mins) == 16
    assert 12_000 < s.estimate() < 32_000


def test_a_fresh_user_agent_per_request_is_client_churn() -> None:
    stream = [exchange(i, user_agent=f"Mozilla/5.0 (X11) Chrome/{90 + i}.0") for i in range(40)]
    v = last(ClientChurn(), stream)
    assert v.evidence >= 1.0
    assert "people and programs use 1–3" in v.explanation


def test_a_person_with_a_browser_a_phone_and_an_sdk_is_not_churn() -> None:
    uas = ["Mozilla/5.0 Firefox/128.0", "ChatClient/3.1 (iPhone)", "openai-python/1.51.2"]
    stream = [exchange(i, user_agent=uas[i % 3]) for i in range(60)]
    v = last(ClientChurn(), stream)
    assert v.value == 3.0 and v.evidence == 0.0


def test_client_churn_needs_user_agents() -> None:
    v = last(ClientChurn(), [exchange(i) for i in range(20)])
    assert not v.available and "no user agents" in v.explanation
