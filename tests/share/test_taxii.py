"""The TAXII 2.1 server, read and written by taxii2-client; push/pull; security."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from distillwatch.clock import ManualClock
from distillwatch.share.errors import IntelError
from distillwatch.share.sign import public_b64, sign
from distillwatch.share.taxii import MEDIA, TaxiiServer, envelope_object, load_config
from distillwatch.share.taxii_client import pull, push
from tests.gateway.fake_upstream import serve_in_thread
from tests.share.taxii_backends import BACKENDS, store_url
from tests.share.test_export import export
from tests.share.world import GROUP, NOW, provider_a

KEYS = {m: Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i, m in
        enumerate(["member-a", "member-b", "member-c"], 1)}  # fmt: skip
PASSWORDS = {m: f"pw-{m}" for m in KEYS}
CID = "8c9a1f4e-2b3d-4c5e-9f60-7a8b9c0d1e2f"
OTHER = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture(scope="module", params=BACKENDS)
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The server on loopback, its store each backend in turn (named by the config's ``store``)."""
    tmp = tmp_path_factory.mktemp("taxii")
    with store_url(request.param, tmp) as store:
        yield from _serve(tmp, store)


def _serve(tmp: Path, store: str) -> Iterator[str]:
    members = {m: {"public_key": public_b64(k.public_key())} for m, k in KEYS.items()}
    (tmp / "members.yaml").write_text(json.dumps({"group": GROUP, "members": members}))
    users = {m: {"password_sha256": hashlib.sha256(p.encode()).hexdigest()}
             for m, p in PASSWORDS.items()}  # fmt: skip
    config = {
        "members": "members.yaml",
        "store": store,
        "users": users,
        "collections": [
            {"id": CID, "title": "campaigns", "read": ["member-a", "member-b"],
             "write": ["member-a", "member-b", "member-c"]},
            {"id": OTHER, "title": "a-only", "read": ["member-a"], "write": ["member-a"]},
        ],
    }  # fmt: skip
    (tmp / "taxii.yaml").write_text(json.dumps(config))
    cfg, policy = load_config(tmp / "taxii.yaml")
    server = TaxiiServer(cfg, policy, clock=ManualClock(NOW.timestamp()))
    try:
        with serve_in_thread(server.app) as url:
            yield url
    finally:
        server.store.close()


def signed(member: str = "member-a", **changes: Any) -> dict[str, Any]:
    bundle = export(provider_a()) if member == "member-a" else _bundle_of(member)
    bundle["id"] = changes.pop("bundle_id", bundle["id"])
    return sign(bundle, member, KEYS[member], signed_at=NOW, expires=NOW + timedelta(days=1))


def _bundle_of(member: str) -> dict[str, Any]:
    return {"type": "bundle", "id": f"bundle--{'0' * 8}-0000-4000-8000-{member[-1] * 12}",
            "objects": []}  # fmt: skip


def col(base: str, member: str, cid: str = CID) -> Collection:
    return Collection(f"{base}/intel/collections/{cid}/", user=member, password=PASSWORDS[member])


def test_discovery_api_root_and_collections(base_url: str) -> None:
    server = Server(f"{base_url}/taxii2/", user="member-b", password=PASSWORDS["member-b"])
    assert server.title and len(server.api_roots) == 1
    root: ApiRoot = server.api_roots[0]
    assert MEDIA in root.versions
    ids = {c.id for c in root.collections}
    assert ids == {CID}  # member-b does not see the a-only collection
    c = next(iter(root.collections))
    assert c.can_read and c.can_write


def test_push_pull_round_trip_with_pagination_and_added_after(
    base_url: str, tmp_path: Path
) -> None:
    env = signed()
    path = tmp_path / "a.json"
    path.write_text(json.dumps(env))
    url = f"{base_url}/intel/collections/{CID}/"
    stored = push(url, "member-a", PASSWORDS["member-a"], [path])
    assert stored == 1 + len(env["bundle"]["objects"])
    got = pull(url, "member-b", PASSWORDS["member-b"], tmp_path / "in")
    assert len(got.written) == 1
    assert json.loads(got.written[0].read_text()) == env  # end to end: still verifiable
    again = pull(url, "member-b", PASSWORDS["member-b"], tmp_path / "in2", since=got.last_added)
    assert again.written == []
    # plain TAXII readers see the STIX objects, page by page
    c = col(base_url, "member-b")
    pages = list(as_pages(c.get_objects, per_request=7))
    seen = [o["id"] for p in pages for o in p.get("objects", [])]
    assert len(pages) > 2 and len(seen) == len(set(seen)) == stored
    indicators = c.get_objects(type="indicator")["objects"]
    assert indicators and all(o["type"] == "indicator" for o in indicators)
    manifest = c.get_manifest(limit=5)
    assert manifest["more"] and len(manifest["objects"]) == 5
    one = c.get_object(indicators[0]["id"])
    assert one["objects"][0]["id"] == indicators[0]["id"]
    later = c.get_objects(added_after=manifest["objects"][-1]["date_added"])
    assert len(later["objects"]) == stored - 5


def _post(base: str, member: str, cid: str, body: Any) -> requests.Response:
    return requests.post(
        f"{base}/intel/collections/{cid}/objects/",
        auth=(member, PASSWORDS[member]),
        headers={"Content-Type": MEDIA, "Accept": MEDIA},
        data=json.dumps(body),
        timeout=10,
    )


def test_rejected_writes(base_url: str) -> None:
    unsigned = _post(base_url, "member-a", CID, {"objects": export(provider_a())["objects"]})
    assert unsigned.status_code == 422 and "unsigned" in unsigned.json()["description"]
    env = signed(bundle_id="bundle--11111111-2222-4333-8444-555555555555")
    tampered = copy.deepcopy(env)
    tampered["bundle"]["objects"][-1]["confidence"] = 1
    r = _post(base_url, "member-a", CID, {"objects": [envelope_object(tampered)]})
    assert r.status_code == 422 and "tampered" in r.json()["description"]
    r = _post(base_url, "member-b", CID, {"objects": [envelope_object(env)]})
    assert r.status_code == 422 and "wrong-signer" in r.json()["description"]
    assert _post(base_url, "member-a", CID, {"objects": [envelope_object(env)]}).status_code == 202
    replay = _post(base_url, "member-a", CID, {"objects": [envelope_object(env)]})
    assert replay.status_code == 422 and "replayed" in replay.json()["description"]
    expired = sign(env["bundle"], "member-a", KEYS["member-a"], signed_at=NOW - timedelta(days=9),
                   expires=NOW - timedelta(days=2))  # fmt: skip
    r = _post(base_url, "member-a", CID, {"objects": [envelope_object(expired)]})
    assert r.status_code == 422 and "expired" in r.json()["description"]


def test_permissions_and_auth(base_url: str) -> None:
    env = signed("member-b")
    assert (
        _post(base_url, "member-b", OTHER, {"objects": [envelope_object(env)]}).status_code == 404
    )
    r = requests.get(f"{base_url}/intel/collections/{OTHER}/objects/",
                     auth=("member-b", PASSWORDS["member-b"]), timeout=10)  # fmt: skip
    assert r.status_code == 404
    r = requests.get(f"{base_url}/intel/collections/{CID}/objects/",
                     auth=("member-c", PASSWORDS["member-c"]), timeout=10)  # fmt: skip
    assert r.status_code == 403  # member-c may write to it, not read it
    r = requests.get(f"{base_url}/intel/collections/{CID}/objects/",
                     auth=("nobody", "x"), timeout=10)  # fmt: skip
    assert r.status_code == 401
    r = requests.get(f"{base_url}/taxii2/", auth=("member-a", "wrong"), timeout=10)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    r = requests.get(f"{base_url}/taxii2/", auth=("member-a", PASSWORDS["member-a"]),
                     headers={"Accept": "text/html"}, timeout=10)  # fmt: skip
    assert r.status_code == 406
    with pytest.raises(IntelError, match=r"403|404"):
        pull(f"{base_url}/intel/collections/{OTHER}/", "member-b", PASSWORDS["member-b"],
             Path("unused"))  # fmt: skip


def test_status_resource(base_url: str) -> None:
    env = signed(bundle_id="bundle--99999999-2222-4333-8444-555555555555")
    c = col(base_url, "member-a")
    status = c.add_objects({"objects": [envelope_object(env)]}, wait_for_completion=True)
    assert status.status == "complete" and status.success_count == status.total_count > 0
    r = requests.get(f"{base_url}/intel/status/{status.id}/",
                     auth=("member-a", PASSWORDS["member-a"]), timeout=10)  # fmt: skip
    assert r.status_code == 200 and r.json()["id"] == status.id
    r = requests.get(f"{base_url}/intel/status/{status.id}/",
                     auth=("member-b", PASSWORDS["member-b"]), timeout=10)  # fmt: skip
    assert r.status_code == 404  # another member's request


def test_cli_push_pull(base_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distillwatch.cli.main import app

    runner = CliRunner()
    env = signed(bundle_id="bundle--77777777-2222-4333-8444-555555555555")
    path = tmp_path / "a.json"
    path.write_text(json.dumps(env))
    url = f"{base_url}/intel/collections/{CID}/"
    r = runner.invoke(app, ["intel", "push", str(path), "--collection", url, "--user", "member-a",
                            "--password", PASSWORDS["member-a"]])  # fmt: skip
    assert r.exit_code == 0, r.output
    state = tmp_path / "state.json"
    args = ["intel", "pull", "--collection", url, "--user", "member-b",
            "--password", PASSWORDS["member-b"], "-o", str(tmp_path / "in"),
            "--state", str(state)]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert json.loads(state.read_text())["last_added"]
    assert any(json.loads(p.read_text()) == env for p in (tmp_path / "in").iterdir())
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "0 bundle(s)" in r.output  # nothing new since the last pull
    r = runner.invoke(app, ["intel", "push", str(path), "--collection", url, "--user", "member-a",
                            "--password", PASSWORDS["member-a"]])  # fmt: skip
    assert r.exit_code == 2 and "replayed" in r.output
    r = runner.invoke(app, ["intel", "serve", "--config", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "cannot read" in r.output
