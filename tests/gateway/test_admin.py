"""The admin API (status with reasons, overrides, policy reload) and /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distillwatch.errors import ConfigError
from distillwatch.gateway.overrides import load_overrides
from distillwatch.policy import DEFAULT_POLICY_PATH
from tests.gateway.conftest import ALICE, GatewayFactory, Running
from tests.gateway.http import Resp, request

TOKEN = "admin-token-0123456789"


def admin(gw: Running, method: str, path: str, body: Any = None, token: str = TOKEN) -> Resp:
    data = json.dumps(body).encode() if body is not None else None
    return request(method, gw.url + path, data, {"authorization": f"Bearer {token}"})


def chat(gw: Running) -> Resp:
    body = {"model": "fake-1", "messages": [{"role": "user", "content": "hi"}]}
    return request(
        "POST",
        gw.url + "/v1/chat/completions",
        json.dumps(body).encode(),
        {"authorization": f"Bearer {ALICE}"},
    )


def test_admin_needs_its_token(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(admin={"token": TOKEN})
    r = admin(gw, "GET", "/admin/accounts/acct-alice", token="wrong-token-000000000")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_admin_is_off_without_a_token(gateway: Running) -> None:
    assert admin(gateway, "GET", "/admin/accounts/acct-alice").status_code == 404


def test_status_override_and_reload(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    gw = start_gateway(admin={"token": TOKEN})
    assert chat(gw).status_code == 200
    status = admin(gw, "GET", "/admin/accounts/acct-alice").json()
    assert status["known"] and status["verdict"]["action"] in ("allow", "monitor")
    assert status["verdict"]["evidence"]["exchanges"] == 1
    assert admin(gw, "GET", "/admin/accounts/nobody").json()["known"] is False

    r = admin(
        gw, "PUT", "/admin/accounts/acct-alice/override", {"action": "block", "reason": "abuse"}
    )
    assert r.status_code == 200
    assert chat(gw).status_code == 403
    assert admin(gw, "GET", "/admin/accounts/acct-alice").json()["override"]["action"] == "block"
    bad = admin(gw, "PUT", "/admin/accounts/acct-alice/override", {"action": "nuke", "reason": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "action"
    bad = admin(gw, "PUT", "/admin/accounts/acct-alice/override", {"action": ["block"]})
    assert bad.status_code == 400
    bad = admin(gw, "PUT", "/admin/accounts/acct-alice/override", {"action": "allow"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "reason"
    assert admin(gw, "DELETE", "/admin/accounts/acct-alice/override").json()["removed"]
    assert chat(gw).status_code == 200

    strict = tmp_path / "strict.yaml"
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace("name: default", "name: strict")
    strict.write_text(text, encoding="utf-8")
    r = admin(gw, "POST", "/admin/policy/reload", {"path": str(strict)})
    assert r.status_code == 200 and r.json()["policy"] == "strict"
    assert r.json()["accounts_redecided"] == 1
    strict.write_text("name: broken\n", encoding="utf-8")
    r = admin(gw, "POST", "/admin/policy/reload", {"path": str(strict)})
    assert r.status_code == 400 and "strict.yaml" in r.json()["error"]["message"]


def test_metrics_count_requests_actions_and_decisions(gateway: Running) -> None:
    chat(gateway)
    chat(gateway)
    text = request("GET", gateway.url + "/metrics").text
    assert 'distillwatch_requests_total{endpoint="/v1/chat/completions",status="200"} 2.0' in text
    assert 'distillwatch_actions_total{action="allow",source="engine"}' in text
    assert "distillwatch_decision_seconds_count 2.0" in text
    assert "distillwatch_log_queue_depth" in text and "distillwatch_engine_queue_depth" in text


def test_overrides_survive_a_restart(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    log = {"dir": str(tmp_path / "shared-log")}
    first = start_gateway(admin={"token": TOKEN}, log=log)
    body = {"action": "block", "reason": "chargeback fraud"}
    assert admin(first, "PUT", "/admin/accounts/acct-alice/override", body).status_code == 200
    start_gateway.stop(first)
    second = start_gateway(admin={"token": TOKEN}, log=log)
    assert chat(second).status_code == 403
    status = admin(second, "GET", "/admin/accounts/acct-alice").json()
    assert status["override"] == {"action": "block", "reason": "chargeback fraud"}


def test_a_corrupt_overrides_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    path.write_text('{"acct": {"action": "nuke"}}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"overrides\.json: unreadable overrides file"):
        load_overrides(path)
