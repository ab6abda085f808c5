"""Received intel in the gateway: a bundle folder watched while serving, the ceiling, and the
same decisions as ``scan --intel`` for the same exchanges."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from typer.testing import CliRunner

from distillwatch.cli.main import app as cli
from distillwatch.clock import format_rfc3339
from distillwatch.errors import ConfigError
from distillwatch.gateway import create_app, load_config
from distillwatch.gateway.config import GatewayConfig
from distillwatch.records import Exchange
from distillwatch.share.feed import BundleFolder
from distillwatch.share.match import CEILING_RULE, SIGNAL_ID
from tests.gateway.conftest import GatewayFactory, Running, Upstream
from tests.gateway.http import request
from tests.share.intel_world import RECEIVER, IntelFiles, intel_files, receiver_log
from tests.share.test_scan_intel import revoking

ADMIN = "admin-token-0123456789"
KEYS = {f"sk-test-{a}-000001": a for a in RECEIVER}
KEY_OF = {a: k for k, a in KEYS.items()}


class World:
    """Intel files, an inbox folder the gateway watches, the receiver's log and accounts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.files: IntelFiles = intel_files(tmp / "intel")
        self.inbox = tmp / "inbox"
        self.inbox.mkdir()
        self.log, self.accounts, self.exchanges = receiver_log(tmp / "r", self.files.now)
        self.keys = tmp / "intel-keys.json"
        self.keys.write_text(json.dumps(KEYS), encoding="utf-8")
        self.feeds: list[BundleFolder] = []

    def app_factory(self) -> Callable[[GatewayConfig], Starlette]:
        """``create_app`` with the feed ``distillwatch serve`` would build, and a test route
        that runs one refresh in the gateway's event loop (deterministic, no waiting)."""

        def build(config: GatewayConfig) -> Starlette:
            assert config.intel is not None
            feed = BundleFolder.open(
                config.intel.bundles_dir,
                members=config.intel.members,
                group_secret=config.intel.group_secret,
            )
            self.feeds.append(feed)
            app = create_app(config, intel=feed)

            async def refresh(request: Request) -> JSONResponse:
                return JSONResponse({"installed": await app.state.refresh_intel()})

            app.add_route("/test/refresh-intel", refresh, methods=["POST"])
            return app

        return build

    def start(self, start_gateway: GatewayFactory, refresh_s: float = 3600.0) -> Running:
        return start_gateway(
            app_factory=self.app_factory(),
            keys=str(self.keys),
            replay_clock=True,
            trust_forwarded_for=True,
            admin={"token": ADMIN},
            engine={"accounts": str(self.accounts), "campaigns": True},
            intel={
                "bundles_dir": str(self.inbox),
                "members": str(self.files.members),
                "group_secret": str(self.files.secret),
                "refresh_s": refresh_s,
            },
        )

    def drop(self, member: str, stix: dict[str, Any], name: str, **kw: Any) -> Path:
        return self.files.signed(member, stix, name, folder=self.inbox, **kw)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def send(gw: Running, e: Exchange) -> int:
    r = request(
        "POST",
        gw.url + "/v1/chat/completions",
        json.dumps({"model": e.model, **(e.request or {})}).encode(),
        {
            "authorization": f"Bearer {KEY_OF[e.account_id]}",
            "content-type": "application/json",
            "x-forwarded-for": e.ip or "",
            "user-agent": e.user_agent or "",
            "x-distillwatch-replay-ts": e.ts.isoformat(),
        },
    )
    return r.status_code


def admin(gw: Running, account: str) -> dict[str, Any]:
    r = request(
        "GET", f"{gw.url}/admin/accounts/{account}", None, {"authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def drained(gw: Running, accounts: tuple[str, ...] = RECEIVER) -> dict[str, dict[str, Any]]:
    """Every account's admin view once the engine has observed all it was sent."""
    deadline = time.monotonic() + 10
    while True:
        views = {a: admin(gw, a) for a in accounts}
        if all(v["pending"] == 0 for v in views.values()):
            return views
        assert time.monotonic() < deadline, "the engine did not catch up"
        time.sleep(0.01)


def refresh(gw: Running) -> bool:
    r = request("POST", gw.url + "/test/refresh-intel")
    assert r.status_code == 200
    return bool(r.json()["installed"])


def test_a_bundle_dropped_after_start_is_matched_without_a_restart(
    world: World, start_gateway: GatewayFactory
) -> None:
    gw = world.start(start_gateway)
    x = [e for e in world.exchanges if e.account_id == "x-corr"]
    assert [send(gw, e) for e in x[:24]] == [200] * 24
    before = drained(gw, ("x-corr",))["x-corr"]["verdict"]
    assert before["action"] == "allow" and SIGNAL_ID not in before["evidence"]["signals"]
    assert refresh(gw) is False  # nothing new yet

    stix_a, stix_c = world.files.a_bundle(), world.files.c_bundle()
    world.drop("member-a", stix_a, "a.json")
    world.drop("member-c", stix_c, "c.json")
    bad = world.drop("member-c", stix_c, "expired.json", expires=-timedelta(hours=1))
    assert refresh(gw) is True
    expired = format_rfc3339(world.files.now - timedelta(hours=1))
    assert world.feeds[0].rejected == {bad: f"bundle rejected (expired): expired {expired}"}
    # x[24] was decided before the intel arrived, so it is served; its observation finds the
    # match, which re-scores the account right away (``Engine.touch`` from inside its own
    # observation, as for the campaign linker): x[25] is refused
    assert send(gw, x[24]) == 200
    after = drained(gw, ("x-corr",))["x-corr"]["verdict"]
    assert after["action"] == "block"
    assert after["evidence"]["signals"][SIGNAL_ID] == 2.0
    assert after["campaign_id"].startswith("campaign--")
    assert [send(gw, x[25]), send(gw, x[26])] == [403, 403]

    # both members revoke: the match is gone from the account's next exchange on
    world.drop("member-a", revoking(world.files, stix_a), "a-revoked.json")
    world.drop("member-c", revoking(world.files, stix_c), "c-revoked.json")
    assert refresh(gw) is True
    assert send(gw, x[27]) == 403  # still the decision from before the revocation
    gone = drained(gw, ("x-corr",))["x-corr"]["verdict"]
    assert SIGNAL_ID not in gone["evidence"]["signals"] and gone["action"] == "allow"
    assert send(gw, x[28]) == 200


def test_the_folder_is_watched_every_refresh_s(world: World, start_gateway: GatewayFactory) -> None:
    world.start(start_gateway, refresh_s=0.05)
    feed = world.feeds[0]
    assert not feed.matcher.index.refs
    world.drop("member-a", world.files.a_bundle(), "a.json")
    deadline = time.monotonic() + 10
    while not feed.matcher.index.refs:  # installed by the periodic task, in the event loop
        assert time.monotonic() < deadline, "the bundle was not picked up"
        time.sleep(0.02)
    assert {r.member for r in feed.matcher.index.refs.values()} == {"member-a"}


def test_live_and_scan_decide_the_same(
    world: World, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    a = world.drop("member-a", world.files.a_bundle(), "a.json")
    c = world.drop("member-c", world.files.c_bundle(), "c.json")
    gw = world.start(start_gateway)
    statuses = [send(gw, e) for e in world.exchanges]
    live = {a: v["verdict"] for a, v in drained(gw).items()}
    assert 403 in statuses  # x-corr was blocked while the log was replayed

    # scan the gateway's own log (the same exchanges, as the gateway logged them)
    log = tmp_path / "gateway.jsonl"
    log.write_text("".join(p.read_text() for p in sorted(gw.log_dir.glob("exchanges-*.jsonl"))))
    out = tmp_path / "scan.jsonl"
    r = CliRunner().invoke(
        cli,
        ["scan", str(log), "--accounts", str(world.accounts), "-o", str(out), "-q",
         "--intel", str(a), "--intel", str(c), "--members", str(world.files.members),
         "--group-secret", str(world.files.secret)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    replayed = {v["account_id"]: v for v in map(json.loads, out.read_text().splitlines())}

    assert live["x-corr"]["action"] == "block" and live["x-corr"]["campaign_id"]
    assert live["y-solo"]["action"] == "monitor"  # the ceiling, live
    assert live["y-solo"]["evidence"]["policy"]["rule"] == CEILING_RULE
    for account in RECEIVER:
        got, want = live[account], replayed[account]
        for key in ("action", "score", "campaign_id", "reasons", "exchanges_before_action"):
            assert got[key] == want[key], (account, key)
        assert got["evidence"]["signals"] == want["evidence"]["signals"], account
        assert got["evidence"]["policy"] == want["evidence"]["policy"], account
        assert _ts(got["first_action_ts"]) == _ts(want["first_action_ts"]), account


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_section_needs_the_feed(world: World, upstream: Upstream) -> None:
    config = load_config(
        None,
        upstream=upstream.url,
        keys=str(world.keys),
        intel={
            "bundles_dir": str(world.inbox),
            "members": str(world.files.members),
            "group_secret": str(world.files.secret),
        },
    )
    with pytest.raises(ConfigError, match="the section and the intel feed go together"):
        create_app(config)


def test_serve_reports_a_missing_bundles_folder_in_one_line(world: World, tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        f"upstream: http://127.0.0.1:9/v1\nkeys: {world.keys}\n"
        f"intel: {{bundles_dir: nowhere, members: {world.files.members}, "
        f"group_secret: {world.files.secret}}}\n",
        encoding="utf-8",
    )
    r = CliRunner().invoke(cli, ["serve", "--config", str(cfg)])
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert f"intel bundles folder {tmp_path / 'nowhere'} does not exist" in text
    assert "Traceback" not in text
