"""``intel push`` / ``intel pull``: signed envelopes to and from a TAXII 2.1 collection.

Built on ``taxii2-client``. Push wraps each signed envelope file as an
``x-distillwatch-envelope`` object and adds it to the collection. Pull pages through the
collection's manifest for envelope objects added after the last pull (``--since``, or the
state file), fetches them by id and writes each envelope to its own file for ``intel import``,
which verifies it end to end (the server's verification is not trusted).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, as_pages

from distillwatch.share.errors import IntelError
from distillwatch.share.files import load_envelope, write_json
from distillwatch.share.taxii import ENVELOPE_TYPE, envelope_object

PAGE: int = 100


def _collection(url: str, user: str, password: str) -> Collection:
    try:
        col = Collection(url if url.endswith("/") else url + "/", user=user, password=password)
        col.refresh()
    except (requests.RequestException, TAXIIServiceException) as exc:
        raise IntelError(f"TAXII collection {url}: {_short(exc)}") from None
    return col


def _short(exc: Exception) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        try:
            body = exc.response.json()
            detail = body.get("description") or body.get("title") or ""
        except ValueError:
            detail = exc.response.text[:200]
        return f"HTTP {exc.response.status_code}: {detail}".strip()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def push(url: str, user: str, password: str, envelopes: Sequence[Path]) -> int:
    """Add signed envelopes to a collection; returns how many objects the server stored."""
    col = _collection(url, user, password)
    stored = 0
    for path in envelopes:
        env = load_envelope(path)
        try:
            status = col.add_objects({"objects": [envelope_object(env)]}, wait_for_completion=False)
        except (requests.RequestException, TAXIIServiceException) as exc:
            raise IntelError(f"{path}: {_short(exc)}") from None
        stored += int(status.success_count)
    return stored


@dataclass
class PullResult:
    written: list[Path]
    last_added: str | None


def pull(url: str, user: str, password: str, out: Path, *, since: str | None = None) -> PullResult:
    """Fetch envelope objects added after ``since`` into ``out``; one file per bundle."""
    col = _collection(url, user, password)
    out.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    last = since
    kwargs: dict[str, Any] = {"type": ENVELOPE_TYPE}
    if since:
        kwargs["added_after"] = since
    try:
        for page in as_pages(col.get_manifest, per_request=PAGE, **kwargs):
            for rec in page.get("objects", []):
                ids.append(rec["id"])
                last = rec["date_added"]
        written = []
        for i in range(0, len(ids), PAGE):
            env = col.get_objects(id=",".join(ids[i : i + PAGE]))
            for obj in env.get("objects", []):
                inner = obj.get("envelope")
                if not isinstance(inner, dict):
                    continue
                bid = str(inner.get("bundle", {}).get("id", obj["id"]))
                path = out / f"{bid.replace('--', '-')}.json"
                write_json(path, inner)
                written.append(path)
    except (requests.RequestException, TAXIIServiceException) as exc:
        raise IntelError(f"TAXII collection {url}: {_short(exc)}") from None
    return PullResult(written, last)


def read_state(path: Path) -> str | None:
    """The ``date_added`` of the last object a previous pull saw (None: pull everything)."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("last_added")
    except (OSError, ValueError, AttributeError):
        raise IntelError(f"{path}: not a pull state file") from None
    return str(value) if value else None
