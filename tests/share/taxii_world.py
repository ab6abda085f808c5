"""Our TAXII server on loopback for the intel of ``intel_world``: the feed pulls from it and
pushes its sightings to it (SQLite store)."""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillwatch.share.files import receive
from distillwatch.share.sign import public_b64
from distillwatch.share.taxii import TaxiiServer, envelope_object, load_config
from distillwatch.share.taxii_client import pull, push
from distillwatch.share.trust import TrustPolicy, load_members
from tests.gateway.fake_upstream import serve_in_thread
from tests.share.intel_world import GROUP, IntelFiles

INTEL = "0f1e2d3c-4b5a-4968-8776-655443322110"
SIGHTINGS = "a1b2c3d4-e5f6-4789-8abc-def012345678"
SIGHTINGS_A = "sightings-for-member-a"
SIGHTINGS_C = "sightings-for-member-c"
"""A collection per publisher: b writes, only that publisher reads."""
PASSWORDS = {m: f"pw-{m}-0123456789" for m in ("member-a", "member-b", "member-c")}
"""member-b is us (the receiver running the gateway); a and c publish."""


@dataclass
class Taxii:
    """A running TAXII server: its base URL, the server (its store), and helpers."""

    url: str
    server: TaxiiServer
    files: IntelFiles
    tmp: Path

    @property
    def api_root(self) -> str:
        return f"{self.url}/intel/"

    def collection(self, cid: str) -> str:
        return f"{self.api_root}collections/{cid}/"

    def publish(self, member: str, envelope: Path) -> int:
        """``member`` pushes a signed envelope file to the intel collection."""
        return push(self.collection(INTEL), member, PASSWORDS[member], [envelope])

    def smuggle(self, envelope: dict[str, Any], bundle_id: str) -> None:
        """Store an envelope object without the server's verification (a compromised or
        careless server): the receiver must verify it itself."""
        obj = envelope_object(envelope)
        obj["id"] = obj["id"][:-12] + hashlib.sha256(bundle_id.encode()).hexdigest()[:12]
        now = self.server.clock.now()
        assert self.server.store.accept(INTEL, bundle_id, "member-a", [obj], now) is not None

    def publisher_members(self) -> Path:
        """The members file of a publisher (member-a): it trusts member-b's signature."""
        path = self.tmp / "publisher-members.yaml"
        key = public_b64(self.files.keys["member-b"].public_key())
        path.write_text(
            f"group: {GROUP}\nmembers:\n  member-b:\n    public_key: {key}\n", encoding="utf-8"
        )
        return path

    def sightings_at(
        self, member: str, out: Path, collection: str = SIGHTINGS
    ) -> list[dict[str, Any]]:
        """What ``member`` pulls from a sightings collection, verified as a publisher
        verifies received envelopes (``files.receive``): the accepted bundles."""
        got = pull(self.collection(collection), member, PASSWORDS[member], out)
        policy: TrustPolicy = load_members(self.publisher_members())
        received = receive(
            got.written, policy=policy, group_secret=b"\0" * 32, now=self.files.now, seen=set()
        )
        assert received.rejected == [], received.rejected
        assert set(received.accepted) <= {"member-b"}
        return [bundle for _, bundle in received.bundles]


@contextmanager
def taxii_server(files: IntelFiles, tmp: Path) -> Iterator[Taxii]:
    """The server: every member of ``files`` trusted; a and c write intel that b reads; b
    writes sightings that a and c read (one shared collection, and one per publisher)."""
    tmp.mkdir(parents=True, exist_ok=True)
    members = {m: {"public_key": public_b64(k.public_key())} for m, k in files.keys.items()}
    (tmp / "members.yaml").write_text(json.dumps({"group": GROUP, "members": members}))
    users = {m: {"password_sha256": hashlib.sha256(p.encode()).hexdigest()}
             for m, p in PASSWORDS.items()}  # fmt: skip
    config = {
        "members": "members.yaml",
        "store": str(tmp / "taxii.sqlite"),
        "users": users,
        "collections": [
            {"id": INTEL, "title": "intel", "read": ["member-b"],
             "write": ["member-a", "member-c"]},
            {"id": SIGHTINGS, "title": "sightings", "read": ["member-a", "member-c"],
             "write": ["member-b"]},
            {"id": SIGHTINGS_A, "title": "sightings for a", "read": ["member-a"],
             "write": ["member-b"]},
            {"id": SIGHTINGS_C, "title": "sightings for c", "read": ["member-c"],
             "write": ["member-b"]},
        ],
    }  # fmt: skip
    (tmp / "taxii.yaml").write_text(json.dumps(config))
    cfg, policy = load_config(tmp / "taxii.yaml")
    server = TaxiiServer(cfg, policy)
    try:
        with serve_in_thread(server.app) as url:
            yield Taxii(url, server, files, tmp)
    finally:
        server.store.close()


def tampered(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope with one indicator's confidence changed after signing."""
    out = copy.deepcopy(envelope)
    for obj in out["bundle"]["objects"]:
        if obj["type"] == "indicator":
            obj["confidence"] = 1
            return out
    raise AssertionError("no indicator to tamper with")


@contextmanager
def silent_server() -> Iterator[str]:
    """A TAXII URL whose server accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/intel/collections/{INTEL}/"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def dead_url() -> str:
    """A TAXII URL nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/intel/collections/{INTEL}/"
