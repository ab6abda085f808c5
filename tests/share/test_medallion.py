"""Our TAXII client pushes to and pulls from a real medallion server (OASIS's reference)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distillwatch.share.errors import IntelError
from distillwatch.share.taxii_client import pull, push
from tests.share.test_taxii import signed

medallion: Any = pytest.importorskip("medallion")
serving: Any = pytest.importorskip("werkzeug.serving")

CID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


@pytest.fixture(scope="module")
def collection_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("medallion") / "data.json"
    media = "application/taxii+json;version=2.1"
    data.write_text(json.dumps({
        "/discovery": {"title": "medallion", "api_roots": ["http://127.0.0.1/api1/"]},
        "api1": {
            "information": {"title": "api1", "versions": [media], "max_content_length": 10**7},
            "status": [],
            "collections": [{
                "id": CID, "title": "intel", "can_read": True, "can_write": True,
                "media_types": ["application/stix+json;version=2.1"], "objects": [],
                "manifest": [],
            }],
        },
    }))  # fmt: skip
    config = {
        "users": {"member-a": "pw-a"},
        "taxii": {"max_page_size": 100},
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(data),
        },
    }
    app = medallion.application_instance
    for name in ("users", "taxii", "backend"):
        medallion.set_config(app, name, config)
    if "collections" not in app.blueprints:
        medallion.register_blueprints(app)
    server = serving.make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api1/collections/{CID}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_push_then_pull_through_medallion(collection_url: str, tmp_path: Path) -> None:
    env = signed(bundle_id="bundle--12121212-2222-4333-8444-555555555555")
    path = tmp_path / "a.json"
    path.write_text(json.dumps(env))
    assert push(collection_url, "member-a", "pw-a", [path]) == 1
    got = pull(collection_url, "member-a", "pw-a", tmp_path / "in")
    assert [json.loads(p.read_text()) for p in got.written] == [env]
    assert got.last_added
    again = pull(collection_url, "member-a", "pw-a", tmp_path / "in2", since=got.last_added)
    assert again.written == []


def test_wrong_password_is_one_line(collection_url: str, tmp_path: Path) -> None:
    with pytest.raises(IntelError, match="401"):
        pull(collection_url, "member-a", "wrong", tmp_path)
