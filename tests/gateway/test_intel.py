"""Received intel in the gateway: a bundle folder watched while serving, the ceiling, and the
same decisions as ``scan --intel`` for the same exchanges."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from typer.testing import CliRunner

from distillwatch.cli.main import app as cli
from distillwatch.cli.serve import build_intel_feed
from distillwatch.clock import format_rfc3339
from distillwatch.errors import ConfigError
from distillwatch.gateway import create_app, load_config
from distillwatch.gateway.config import GatewayConfig
from distillwatch.records import Exchange
from distillwatch.share.feed import BundleFolder
from distillwatch.share.match import CEILING_RULE, SIGNAL_ID
from tests.gateway.conftest import GatewayFactory, Running, Upstream
from tests.gateway.http import request
from tests.share.intel_world import (
    ATTACKER,
    RECEIVER,
    X_CARD,
    Y_CARD,
    IntelFiles,
    intel_files,
    receiver_log,
)
from tests.share.taxii_world import (
    INTEL,
    PASSWORDS,
    SIGHTINGS,
    SIGHTINGS_A,
    dead_url,
    taxii_server,
)
from tests.share.test_scan_intel import revoking

ADMIN = "admin-token-0123456789"
KEYS = {f"sk-test-{a}-000001": a for a in (*RECEIVER, ATTACKER)}
KEY_OF = {a: k for k, a in KEYS.items()}


class World:
    """Intel files, an inbox folder the gateway watches, the receiver's log and accounts."""

    def __init__(self, tmp: Path, *, attacker: bool = False) -> None:
        self.tmp = tmp
        self.files: IntelFiles = intel_files(tmp / "intel")
        self.inbox = tmp / "inbox"
        self.inbox.mkdir()
        self.log, self.accounts, self.exchanges = receiver_log(
            tmp / "r", self.files.now, attacker=attacker
        )
        self.keys = tmp / "intel-keys.json"
        self.keys.write_text(json.dumps(KEYS), encoding="utf-8")
        self.feeds: list[BundleFolder] = []

    def app_factory(self) -> Callable[[GatewayConfig], Starlette]:
        """``create_app`` with the feed ``distillwatch serve`` would build, and a test route
        that runs one refresh in the gateway's event loop (deterministic, no waiting)."""

        def build(config: GatewayConfig) -> Starlette:
            assert config.intel is not None
            feed = build_intel_feed(config)  # what `distillwatch serve` builds
            self.feeds.append(feed)
            app = create_app(config, intel=feed)

            def route(name: str) -> Callable[[Request], Awaitable[JSONResponse]]:
                async def endpoint(request: Request) -> JSONResponse:
                    return JSONResponse({"done": await getattr(app.state, name)()})

                return endpoint

            for name in ("refresh_intel", "pull_intel", "report_sightings"):
                path = "/test/" + name.replace("_", "-")
                app.add_route(path, route(name), methods=["POST"])
            return app

        return build

    def start(
        self, start_gateway: GatewayFactory, refresh_s: float = 3600.0, **intel: Any
    ) -> Running:
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
                **intel,
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


def call(gw: Running, what: str) -> bool:
    """Run one of the feed's steps now, in the gateway's event loop (no waiting)."""
    r = request("POST", f"{gw.url}/test/{what}")
    assert r.status_code == 200
    return bool(r.json()["done"])


def refresh(gw: Running) -> bool:
    return call(gw, "refresh-intel")


def scan_gateway_log(
    gw: Running, world: World, tmp_path: Path, bundles: list[Path]
) -> dict[str, dict[str, Any]]:
    """``scan --intel`` over the gateway's own log (the exchanges as it logged them): the
    verdicts by account."""
    log = tmp_path / "gateway.jsonl"
    log.write_text("".join(p.read_text() for p in sorted(gw.log_dir.glob("exchanges-*.jsonl"))))
    out = tmp_path / "scan.jsonl"
    intel = [arg for b in bundles for arg in ("--intel", str(b))]
    r = CliRunner().invoke(
        cli,
        ["scan", str(log), "--accounts", str(world.accounts), "-o", str(out), "-q", *intel,
         "--members", str(world.files.members), "--group-secret", str(world.files.secret)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return {v["account_id"]: v for v in map(json.loads, out.read_text().splitlines())}


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
    replayed = scan_gateway_log(gw, world, tmp_path, [a, c])

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


def test_a_received_rule_matches_live_and_is_sighted_back(
    tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    """A behaviour rule is matched on the live engine's signal values, under the ceiling,
    decided as ``scan --intel`` decides it, and its match goes back as a sighting."""
    world = World(tmp_path, attacker=True)
    stix = world.files.with_rule(world.files.a_bundle())
    (rule_id,) = world.files.rule_ids(stix)
    a = world.drop("member-a", stix, "a.json")
    outbox = tmp_path / "outbox"
    gw = world.start(
        start_gateway,
        member="member-b",
        key=str(world.files.key_file("member-b")),
        sightings_dir=str(outbox),
    )
    sent = [e for e in world.exchanges if e.account_id in (ATTACKER, "legit-1")]
    assert {send(gw, e) for e in sent} == {200}  # monitor only: served
    live = {a: v["verdict"] for a, v in drained(gw, (ATTACKER, "legit-1")).items()}
    z = live[ATTACKER]
    assert z["evidence"]["signals"][SIGNAL_ID] == 1.0
    assert z["reasons"][0] == (
        "matches 1 behaviour rule from member-a (confidence 50); uncorroborated: monitor only"
    )
    assert z["action"] == "monitor" and z["evidence"]["policy"]["rule"] == CEILING_RULE
    assert SIGNAL_ID not in live["legit-1"]["evidence"]["signals"]

    assert call(gw, "report-sightings") is True
    (report,) = outbox.glob("sightings-*.json")
    objs = json.loads(report.read_text())["bundle"]["objects"]
    assert [(o["sighting_of_ref"], o["count"]) for o in objs] == [(rule_id, 1)]

    replayed = scan_gateway_log(gw, world, tmp_path, [a])
    for account in (ATTACKER, "legit-1"):
        got, want = live[account], replayed[account]
        for key in ("action", "score", "campaign_id", "reasons"):
            assert got[key] == want[key], (account, key)
        assert got["evidence"]["signals"] == want["evidence"]["signals"], account


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


# -- TAXII pull and sightings back, live -----------------------------------------------------


def exchanges_of(world: World, account: str) -> list[Exchange]:
    return [e for e in world.exchanges if e.account_id == account]


def wait_for(feed: BundleFolder, members: set[str]) -> None:
    deadline = time.monotonic() + 10
    while {r.member for r in feed.matcher.index.refs.values()} != members:
        assert time.monotonic() < deadline, "the pulled intel was not installed"
        time.sleep(0.02)


CANARIES = ("x-corr", "y-solo", "legit-1", "198.51.100.", X_CARD, Y_CARD, "curl/8")
"""Raw local values (account ids, addresses, cards, clients) no sighting may carry."""


def test_intel_pushed_to_taxii_after_start_is_pulled_matched_and_sighted_back(
    world: World, start_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILLWATCH_TAXII_PASSWORD", PASSWORDS["member-b"])
    outbox = tmp_path / "outbox"
    with taxii_server(world.files, tmp_path / "taxii") as taxii:
        gw = world.start(
            start_gateway,
            member="member-b",
            key=str(world.files.key_file("member-b")),
            sightings_dir=str(outbox),
            taxii={"url": taxii.api_root, "collection": INTEL,
                   "sightings_collections": {"member-a": SIGHTINGS_A},
                   "sightings_collection": SIGHTINGS, "pull_s": 3600},
        )  # fmt: skip
        feed = world.feeds[0]
        x, y = exchanges_of(world, "x-corr"), exchanges_of(world, "y-solo")
        assert [send(gw, e) for e in x[:20]] == [200] * 20
        assert call(gw, "report-sightings") is False  # nothing matched: nothing written

        # published after the gateway started: pulled, verified, installed
        files = world.files
        taxii.publish("member-a", files.signed("member-a", files.a_bundle(), "a.json"))
        taxii.publish("member-c", files.signed("member-c", files.c_bundle(), "c.json"))
        call(gw, "pull-intel")  # (the start-up pull may have raced it: both install it)
        wait_for(feed, {"member-a", "member-c"})
        assert len(list(world.inbox.glob("bundle-*.json"))) == 2  # kept for a restart
        assert send(gw, x[20]) == 200
        after = drained(gw, ("x-corr",))["x-corr"]["verdict"]
        assert after["action"] == "block" and after["evidence"]["signals"][SIGNAL_ID] == 2.0
        assert send(gw, x[21]) == 403

        # the sightings of the matches go back, one envelope per publisher: the outbox, and
        # member-a's own collection (member-c has none: the fallback)
        assert call(gw, "report-sightings") is True
        reports = {p.name.split("Z-", 1)[1]: p for p in outbox.glob("sightings-*.json")}
        assert set(reports) == {"member-a.json", "member-c.json"}
        cards = {r.indicator_id: r.member for r in feed.matcher.index.refs.values()
                 if r.kind == "card"}  # fmt: skip
        (for_a,) = taxii.sightings_at("member-a", tmp_path / "at-a", SIGHTINGS_A)
        (for_c,) = taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS)
        got: dict[str, int] = {}
        for bundle, publisher in ((for_a, "member-a"), (for_c, "member-c")):
            counts = {o["sighting_of_ref"]: o["count"] for o in bundle["objects"]}
            assert {cards[i] for i in counts} == {publisher} and set(counts.values()) == {1}
            assert json.loads(reports[f"{publisher}.json"].read_text())["bundle"] == bundle
            got |= counts
        state = (outbox / ".sightings-state.json").read_text()
        for text in (*(p.read_text() for p in reports.values()), state):
            for canary in CANARIES:
                assert canary not in text, canary
        assert call(gw, "report-sightings") is False  # nothing new: nothing sent again

        # y-solo matches member-a's other card later: the next report holds only that
        assert [send(gw, e) for e in y[:3]] == [200] * 3
        drained(gw, ("y-solo",))
        assert call(gw, "report-sightings") is True
        (second,) = set(outbox.glob("sightings-*.json")) - set(reports.values())
        assert second.name.endswith("-member-a.json")
        objs = json.loads(second.read_text())["bundle"]["objects"]
        assert [(cards[o["sighting_of_ref"]], o["count"]) for o in objs] == [("member-a", 1)]
        assert objs[0]["sighting_of_ref"] not in got
        assert len(taxii.sightings_at("member-a", tmp_path / "at-a", SIGHTINGS_A)) == 2
        assert len(taxii.sightings_at("member-c", tmp_path / "at-c", SIGHTINGS)) == 1


def test_a_taxii_server_that_is_down_does_not_stop_serving(
    world: World,
    start_gateway: GatewayFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DISTILLWATCH_TAXII_PASSWORD", PASSWORDS["member-b"])
    world.drop("member-a", world.files.a_bundle(), "a.json")
    world.drop("member-c", world.files.c_bundle(), "c.json")
    root = dead_url().split("collections/")[0]
    with caplog.at_level(logging.WARNING, logger="distillwatch.share"):
        gw = world.start(
            start_gateway,
            taxii={"url": root, "collection": INTEL, "user": "member-b", "pull_s": 0.05},
        )
        statuses = [send(gw, e) for e in exchanges_of(world, "x-corr")]
        assert call(gw, "pull-intel") is False
    assert statuses[0] == 200 and 403 in statuses  # served, with the folder's intel
    assert request("GET", gw.url + "/healthz").status_code == 200
    failed = [r for r in caplog.records if "TAXII pull failed" in r.getMessage()]
    assert len(failed) >= 2  # logged, and tried again
    assert {r.member for r in world.feeds[0].matcher.index.refs.values()} == {
        "member-a", "member-c"}  # fmt: skip


def _intel(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "bundles_dir": str(world.inbox),
        "members": str(world.files.members),
        "group_secret": str(world.files.secret),
        **extra,
    }


TAXII = {"url": "https://taxii.example/intel", "collection": INTEL}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"taxii": {**TAXII, "user": "b", "password": "hunter2"}},
         "`intel.taxii`: a password is never written in the config"),
        ({"member": "member-b"}, "`intel.key`: `member` and `key` go together"),
        ({"member": "member-b", "key": "b.key"}, "`intel.sightings_dir`: the outbox"),
        ({"sightings_dir": "out"}, "`intel.sightings_dir`: sightings need `member` and `key`"),
        ({"taxii": TAXII}, "`intel.taxii`: set `user` (our TAXII account), or `intel.member`"),
        ({"taxii": {**TAXII, "user": "b", "sightings_collection": SIGHTINGS}},
         "`intel.taxii`: `sightings_collection` needs `intel.member` and `intel.key`"),
        ({"taxii": {**TAXII, "user": "b", "password_env": "X", "password_file": "p"}},
         "`intel.taxii.password_file`: set `password_env` or `password_file`, not both"),
        ({"taxii": {**TAXII, "url": "taxii.example"}}, "`intel.taxii.url`: must be the http"),
        ({"taxii": {**TAXII, "user": "b", "collection": "a/b"}},
         "`intel.taxii.collection`: not a collection id"),
        ({"taxii": {**TAXII, "user": "b", "pull_s": 0}}, "`intel.taxii.pull_s`"),
        ({"taxii": {**TAXII, "user": "b", "sightings_collections": {"member-a": SIGHTINGS}}},
         "`intel.taxii`: `sightings_collections` needs `intel.member` and `intel.key`"),
        ({"taxii": {**TAXII, "user": "b", "sightings_collections": {"member-a": "a/b"}}},
         "`intel.taxii.sightings_collections`: member-a: not a collection id"),
        ({"taxii": {**TAXII, "user": "b", "sightings_collections": {"../a": SIGHTINGS}}},
         "`intel.taxii.sightings_collections`: not a member name"),
    ],
)  # fmt: skip
def test_intel_config_errors_are_one_line(
    world: World, tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        json.dumps({"upstream": "http://127.0.0.1:9/v1", "intel": _intel(world, **extra)}),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(err.value).startswith(f"{cfg}: {message}"), str(err.value)


def test_serve_without_the_taxii_password_stops_in_one_line(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISTILLWATCH_TAXII_PASSWORD", raising=False)
    cfg = tmp_path / "gw.yaml"
    intel = _intel(world, taxii={**TAXII, "user": "member-b"})
    cfg.write_text(
        json.dumps({"upstream": "http://127.0.0.1:9/v1", "keys": str(world.keys), "intel": intel}),
        encoding="utf-8",
    )
    r = CliRunner().invoke(cli, ["serve", "--config", str(cfg)])
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert (
        f"{cfg}: `intel.taxii.password_env`: the environment variable "
        "DISTILLWATCH_TAXII_PASSWORD (the TAXII password) is not set"
    ) in text
    assert "Traceback" not in text
    # from a file (relative to the config), the start gets past the password
    (tmp_path / "taxii.pw").write_text(PASSWORDS["member-b"] + "\n")
    intel["taxii"] = {**TAXII, "user": "member-b", "password_file": "taxii.pw"}
    cfg.write_text(
        json.dumps({"upstream": "http://127.0.0.1:9/v1", "keys": str(world.keys), "intel": intel}),
        encoding="utf-8",
    )
    feed = build_intel_feed(load_config(cfg), cfg)
    assert feed.taxii is not None and "taxii.pw" not in repr(feed.taxii)
    assert PASSWORDS["member-b"] not in repr(feed.taxii)
