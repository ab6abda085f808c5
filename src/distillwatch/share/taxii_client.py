"""``intel push`` / ``intel pull``: signed envelopes to and from a TAXII 2.1 collection.

Built on ``taxii2-client``. Push wraps each signed envelope file as an
``x-distillwatch-envelope`` object and adds it to the collection. Pull pages through the
collection's manifest for envelope objects added after the last pull (``--since``, or the
state file), fetches them by id and writes each envelope to its own file for ``intel import``,
which verifies it end to end (the server's verification is not trusted). The gateway's feed
(``share.feed``) runs the same pull and push while it serves. Every request has a timeout
(taxii2-client sets none), so a server that stops answering cannot hold a caller forever.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from taxii2client.common import _HTTPConnection
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, as_pages

from distillwatch.share.errors import IntelError
from distillwatch.share.files import load_envelope, write_json
from distillwatch.share.taxii import ENVELOPE_TYPE, envelope_object

PAGE: int = 100
TIMEOUT_S: float = 60.0
"""Longest wait for a TAXII server to connect or to send the next bytes of an answer."""
_SAFE = re.compile(r"[^A-Za-z0-9-]+")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class ServerRejectedError(IntelError):
    """The server refused an envelope for good (e.g. 422 ``replayed``, ``expired``): sending
    it again cannot succeed. ``reason`` is the server's description."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"HTTP {status}: {reason}")


@contextmanager
def _collection(
    url: str, user: str, password: str, timeout_s: float = TIMEOUT_S
) -> Iterator[Collection]:
    """The collection at ``url`` (its information fetched); its connections closed after."""
    conn = _HTTPConnection(user, password, version="2.1")
    conn.session.request = functools.partial(conn.session.request, timeout=timeout_s)
    try:
        col = Collection(url if url.endswith("/") else url + "/", conn=conn)
        col.refresh()
    except (requests.RequestException, TAXIIServiceException) as exc:
        conn.close()
        raise IntelError(f"TAXII collection {url}: {_short(exc)}") from None
    try:
        yield col
    finally:
        conn.close()


def _short(exc: Exception) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}: {_detail(exc.response)}".strip()
    if isinstance(exc, requests.Timeout):
        return "no answer in time (timeout)"
    if isinstance(exc, requests.ConnectionError):
        why = _ERRNO.search(str(exc))
        return f"cannot connect ({why.group(1).strip()})" if why else "cannot connect"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _detail(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("description") or body.get("title") or "")
    except (ValueError, AttributeError):
        return str(response.text[:200])


def _add(col: Collection, envelope: Any, where: str) -> int:
    """Add one envelope; how many objects the server stored. A 4xx answer other than
    401/403/404/408/429 (a refusal of this envelope, not of us) is ``ServerRejectedError``."""
    try:
        status = col.add_objects(
            {"objects": [envelope_object(envelope)]}, wait_for_completion=False
        )
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        if 400 <= code < 500 and code not in (401, 403, 404, 408, 429):
            raise ServerRejectedError(code, _detail(exc.response)) from None
        raise IntelError(f"{where}: {_short(exc)}") from None
    except (requests.RequestException, TAXIIServiceException) as exc:
        raise IntelError(f"{where}: {_short(exc)}") from None
    return int(status.success_count)


def push(
    url: str,
    user: str,
    password: str,
    envelopes: Sequence[Path],
    *,
    timeout_s: float = TIMEOUT_S,
) -> int:
    """Add signed envelopes to a collection; returns how many objects the server stored."""
    stored = 0
    with _collection(url, user, password, timeout_s) as col:
        for path in envelopes:
            env = load_envelope(path)
            try:
                stored += _add(col, env, str(path))
            except ServerRejectedError as exc:
                raise IntelError(f"{path}: {exc}") from None
    return stored


def push_envelope(
    url: str, user: str, password: str, envelope: Any, *, timeout_s: float = TIMEOUT_S
) -> int:
    """Add one signed envelope (already in memory) to a collection; the objects stored.
    ``ServerRejectedError`` when the server refuses it for good, ``IntelError`` otherwise."""
    with _collection(url, user, password, timeout_s) as col:
        return _add(col, envelope, f"TAXII collection {url}")


@dataclass
class PullResult:
    written: list[Path]
    last_added: str | None
    skipped: int = 0
    """Envelope objects without an envelope inside (nothing to verify)."""


def envelope_name(envelope: dict[str, Any]) -> str:
    """The file name of a pulled envelope: its bundle id (made safe for a file name, since it
    is not verified yet) and a digest of its content, so a different envelope claiming the
    same bundle id never overwrites one received before."""
    raw = json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(raw).hexdigest()[:12]
    bundle = envelope.get("bundle")
    bid = str(bundle.get("id", "")) if isinstance(bundle, dict) else ""
    safe = _SAFE.sub("-", bid).strip("-")[:64] or "envelope"
    return f"{safe}-{digest}.json"


def pull(
    url: str,
    user: str,
    password: str,
    out: Path,
    *,
    since: str | None = None,
    timeout_s: float = TIMEOUT_S,
) -> PullResult:
    """Fetch envelope objects added after ``since`` into ``out``; one file per bundle."""
    with _collection(url, user, password, timeout_s) as col:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IntelError(f"cannot create {out}: {exc.strerror or exc}") from None
        ids: list[str] = []
        last = since
        kwargs: dict[str, Any] = {"type": ENVELOPE_TYPE}
        if since:
            kwargs["added_after"] = since
        written: list[Path] = []
        skipped = 0
        try:
            for page in as_pages(col.get_manifest, per_request=PAGE, **kwargs):
                for rec in page.get("objects", []):
                    ids.append(rec["id"])
                    last = rec["date_added"]
            for i in range(0, len(ids), PAGE):
                env = col.get_objects(id=",".join(ids[i : i + PAGE]))
                for obj in env.get("objects", []):
                    inner = obj.get("envelope")
                    if not isinstance(inner, dict):
                        skipped += 1
                        continue
                    path = out / envelope_name(inner)
                    write_json(path, inner)
                    written.append(path)
        except (requests.RequestException, TAXIIServiceException) as exc:
            raise IntelError(f"TAXII collection {url}: {_short(exc)}") from None
        except (KeyError, TypeError, AttributeError):
            raise IntelError(f"TAXII collection {url}: not a TAXII 2.1 answer") from None
    return PullResult(written, last, skipped)


def read_state(path: Path) -> str | None:
    """The ``date_added`` of the last object a previous pull saw (None: pull everything)."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("last_added")
    except (OSError, ValueError, AttributeError):
        raise IntelError(f"{path}: not a pull state file") from None
    return str(value) if value else None
