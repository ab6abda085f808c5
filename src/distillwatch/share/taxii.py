"""A TAXII 2.1 server for signed intel (``distillwatch intel serve``), on Starlette.

Endpoints: discovery (``/taxii2/``), the API root, collections, a collection, its objects
(GET with ``added_after``, ``limit``/``next`` pagination, ``match[id]``, ``match[type]``,
``match[version]=all``; POST), one object, the manifest, and status resources.

**Authentication**: HTTP Basic per member (``users`` in the config: SHA-256 of the password;
run it behind TLS). **Authorisation** per collection: ``read`` and ``write`` member lists; a
member with neither sees the collection as absent (404), one lacking the needed permission
gets 403, as TAXII 2.1 specifies.

**Writes carry signed bundles**: each posted object must be an ``x-distillwatch-envelope``
(``envelope``: a ``sign`` envelope); the server verifies it (``sign.verify``: unsigned,
tampered, expired, unknown-signer and replayed bundles are refused with 422 and the reason),
requires the signer to be the authenticated member, and stores the envelope object *and* the
bundle's STIX objects, so plain TAXII consumers see standard STIX while distillwatch members
pull the envelopes and verify them end to end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillwatch.clock import Clock, SystemClock
from distillwatch.share.errors import IntelError, RejectedBundleError
from distillwatch.share.sign import parse_ts, verify
from distillwatch.share.taxii_store import (
    Page,
    TaxiiStore,
    format_added,
    new_status_id,
    open_taxii_store,
)
from distillwatch.share.trust import TrustPolicy, load_members

MEDIA: Final = "application/taxii+json;version=2.1"
ENVELOPE_TYPE: Final = "x-distillwatch-envelope"
MAX_PAGE: Final = 1000
log = logging.getLogger("distillwatch.share")


class UserEntry(msgspec.Struct, forbid_unknown_fields=True):
    password_sha256: str


class CollectionEntry(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    title: str
    read: list[str] = msgspec.field(default_factory=list)
    write: list[str] = msgspec.field(default_factory=list)
    description: str = ""


class TaxiiConfig(msgspec.Struct, forbid_unknown_fields=True):
    members: str
    users: dict[str, UserEntry]
    collections: list[CollectionEntry]
    title: str = "distillwatch intel exchange"
    api_root: Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]+$")] = "intel"
    store: str = ":memory:"
    max_content_length: int = 10 * 1024 * 1024


def envelope_object(envelope: Any) -> dict[str, Any]:
    """A signed envelope as a TAXII-storable custom STIX object (id from the bundle id)."""
    bundle_id = str(envelope.get("bundle", {}).get("id", ""))
    uid = uuid.uuid5(uuid.NAMESPACE_URL, bundle_id)
    return {
        "type": ENVELOPE_TYPE,
        "spec_version": "2.1",
        "id": f"{ENVELOPE_TYPE}--{uid}",
        "created": envelope.get("signed_at"),
        "modified": envelope.get("signed_at"),
        "envelope": envelope,
    }


def load_config(path: Path) -> tuple[TaxiiConfig, TrustPolicy]:
    """The server config and the members file it names (relative to the config)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        config = msgspec.convert(raw, TaxiiConfig)
    except OSError as exc:
        raise IntelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise IntelError(f"{path}: {str(exc).splitlines()[0]}") from None
    members = Path(config.members)
    policy = load_members(members if members.is_absolute() else path.parent / members)
    for c in config.collections:
        unknown = (set(c.read) | set(c.write)) - set(config.users)
        if unknown:
            raise IntelError(f"{path}: collection {c.id}: unknown users {sorted(unknown)}")
    return config, policy


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, media_type=MEDIA)


def _error(status: int, title: str, description: str = "") -> Response:
    body = {"title": title, "http_status": str(status)}
    if description:
        body["description"] = description
    headers = {"WWW-Authenticate": 'Basic realm="taxii"'} if status == 401 else None
    return _json(body, status, headers)


class TaxiiServer:
    """The TAXII 2.1 app's state and handlers."""

    def __init__(
        self,
        config: TaxiiConfig,
        policy: TrustPolicy,
        store: TaxiiStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.store = store or open_taxii_store(config.store)
        self.clock = clock or SystemClock()
        self.collections = {c.id: c for c in config.collections}
        root = f"/{config.api_root}"
        self.app = Starlette(
            routes=[
                Route("/taxii2/", self._guard(self.discovery)),
                Route(f"{root}/", self._guard(self.api_root)),
                Route(f"{root}/status/{{sid}}/", self._guard(self.status)),
                Route(f"{root}/collections/", self._guard(self.list_collections)),
                Route(f"{root}/collections/{{cid}}/", self._guard(self.collection)),
                Route(
                    f"{root}/collections/{{cid}}/objects/",
                    self._guard(self.objects),
                    methods=["GET", "POST"],
                ),
                Route(f"{root}/collections/{{cid}}/objects/{{oid}}/", self._guard(self.one)),
                Route(f"{root}/collections/{{cid}}/manifest/", self._guard(self.manifest)),
            ]
        )

    # -- plumbing -----------------------------------------------------------------------

    def _member(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        entry = self.config.users.get(user)
        digest = hashlib.sha256(password.encode()).hexdigest()
        if entry is None or not hmac.compare_digest(digest, entry.password_sha256.lower()):
            return None
        return user

    def _guard(
        self, handler: Callable[[Request, str], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            member = self._member(request)
            if member is None:
                return _error(401, "authentication required")
            accept = request.headers.get("accept", MEDIA).replace(" ", "")
            if not any(a in accept for a in ("application/taxii+json", "*/*")):
                return _error(406, "only application/taxii+json;version=2.1 is served")
            try:
                return await handler(request, member)
            except IntelError as exc:  # the store is unreachable or failing
                log.error("TAXII request failed: %s", exc)
                return _error(503, "store unavailable", str(exc))

        return endpoint

    def _access(self, cid: str, member: str, need: str) -> CollectionEntry | Response:
        c = self.collections.get(cid)
        if c is None or (member not in c.read and member not in c.write):
            return _error(404, "no such collection")
        if member not in (c.read if need == "read" else c.write):
            return _error(403, f"no {need} permission on this collection")
        return c

    def _info(self, c: CollectionEntry, member: str) -> dict[str, Any]:
        return {
            "id": c.id,
            "title": c.title,
            "description": c.description,
            "can_read": member in c.read,
            "can_write": member in c.write,
            "media_types": ["application/stix+json;version=2.1"],
        }

    # -- endpoints ----------------------------------------------------------------------

    async def discovery(self, request: Request, member: str) -> Response:
        root = str(request.base_url).rstrip("/") + f"/{self.config.api_root}/"
        return _json({"title": self.config.title, "default": root, "api_roots": [root]})

    async def api_root(self, request: Request, member: str) -> Response:
        return _json(
            {
                "title": self.config.title,
                "versions": [MEDIA],
                "max_content_length": self.config.max_content_length,
            }
        )

    async def status(self, request: Request, member: str) -> Response:
        body = self.store.status(request.path_params["sid"])
        if body is None or body.get("x_member") != member:
            return _error(404, "no such status")
        return _json({k: v for k, v in body.items() if k != "x_member"})

    async def list_collections(self, request: Request, member: str) -> Response:
        mine = [
            self._info(c, member)
            for c in self.collections.values()
            if member in c.read or member in c.write
        ]
        return _json({"collections": mine} if mine else {})

    async def collection(self, request: Request, member: str) -> Response:
        c = self.collections.get(request.path_params["cid"])
        if c is None or (member not in c.read and member not in c.write):
            return _error(404, "no such collection")
        return _json(self._info(c, member))

    def _query(self, request: Request, cid: str, oid: str | None = None) -> Page | Response:
        q = request.query_params
        try:
            limit = min(MAX_PAGE, max(1, int(q.get("limit") or MAX_PAGE)))
            after_seq = int(q.get("next") or 0)
            added = q.get("added_after")
            added_after = parse_ts(added).timestamp() if added else None
        except ValueError:
            return _error(400, "bad limit, next or added_after")
        ids = [oid] if oid else [i for i in q.get("match[id]", "").split(",") if i]
        types = [t for t in q.get("match[type]", "").split(",") if t]
        return self.store.page(
            cid,
            added_after=added_after,
            after_seq=after_seq,
            limit=limit,
            ids=ids,
            types=types,
            all_versions=q.get("match[version]") == "all",
        )

    @staticmethod
    def _headers(page: Page) -> dict[str, str]:
        if not page.rows:
            return {}
        return {
            "X-TAXII-Date-Added-First": format_added(page.rows[0].date_added),
            "X-TAXII-Date-Added-Last": format_added(page.rows[-1].date_added),
        }

    @staticmethod
    def _envelope(page: Page) -> dict[str, Any]:
        body: dict[str, Any] = {"more": page.more}
        if page.next:
            body["next"] = page.next
        if page.rows:
            body["objects"] = [r.body for r in page.rows]
        return body

    async def objects(self, request: Request, member: str) -> Response:
        cid = request.path_params["cid"]
        if request.method == "POST":
            return await self._add(request, member, cid)
        c = self._access(cid, member, "read")
        if isinstance(c, Response):
            return c
        page = self._query(request, cid)
        if isinstance(page, Response):
            return page
        return _json(self._envelope(page), headers=self._headers(page))

    async def one(self, request: Request, member: str) -> Response:
        cid = request.path_params["cid"]
        c = self._access(cid, member, "read")
        if isinstance(c, Response):
            return c
        page = self._query(request, cid, request.path_params["oid"])
        if isinstance(page, Response):
            return page
        if not page.rows:
            return _error(404, "no such object")
        return _json(self._envelope(page), headers=self._headers(page))

    async def manifest(self, request: Request, member: str) -> Response:
        cid = request.path_params["cid"]
        c = self._access(cid, member, "read")
        if isinstance(c, Response):
            return c
        page = self._query(request, cid)
        if isinstance(page, Response):
            return page
        body: dict[str, Any] = {"more": page.more}
        if page.next:
            body["next"] = page.next
        if page.rows:
            body["objects"] = [
                {
                    "id": r.id,
                    "date_added": format_added(r.date_added),
                    "version": r.version,
                    "media_type": "application/stix+json;version=2.1",
                }
                for r in page.rows
            ]
        return _json(body, headers=self._headers(page))

    async def _add(self, request: Request, member: str, cid: str) -> Response:
        c = self._access(cid, member, "write")
        if isinstance(c, Response):
            return c
        if "application/taxii+json" not in request.headers.get("content-type", ""):
            return _error(415, "send application/taxii+json;version=2.1")
        raw = await request.body()
        if len(raw) > self.config.max_content_length:
            return _error(413, "request too large")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        objects = body.get("objects") if isinstance(body, dict) else None
        if not isinstance(objects, list):
            return _error(400, "not a TAXII envelope with objects")
        now = self.clock.now()
        when = datetime.fromtimestamp(now, UTC)
        accepted: list[tuple[str, list[dict[str, Any]]]] = []
        for obj in objects:
            if not isinstance(obj, dict) or obj.get("type") != ENVELOPE_TYPE:
                log.warning("intel bundle rejected: unsigned: TAXII write by %s", member)
                return _error(422, "bundle rejected", "unsigned: objects must be signed envelopes")
            env = obj.get("envelope")
            try:
                signer, bundle = verify(env, self.policy.signers, now=when)
            except RejectedBundleError as exc:
                return _error(422, "bundle rejected", str(exc))
            if signer.member != member:
                log.warning("intel bundle rejected: wrong-signer: %s posted %s's", member, signer)
                return _error(422, "bundle rejected", "wrong-signer: sign what you publish")
            if self.store.seen_bundle(str(bundle.get("id"))):
                log.warning("intel bundle rejected: replayed: %s", bundle.get("id"))
                return _error(422, "bundle rejected", "replayed: bundle accepted before")
            stored = envelope_object(env)  # verified: a dict
            accepted.append((str(bundle.get("id")), [stored, *bundle["objects"]]))
        successes: list[dict[str, str]] = []
        failures: list[dict[str, str]] = []
        for bid, objs in accepted:
            rows = self.store.accept(cid, bid, member, objs, now)
            if rows is None:  # a concurrent request stored this bundle first
                log.warning("intel bundle rejected: replayed: %s", bid)
                sid = str(objs[0]["id"])
                failures.append({"id": sid, "message": "replayed: bundle accepted before"})
                continue
            successes += [{"id": r.id, "version": r.version} for r in rows]
        if failures and not successes:
            return _error(422, "bundle rejected", "replayed: bundle accepted before")
        status = {
            "id": new_status_id(),
            "status": "complete",
            "request_timestamp": format_added(now),
            "total_count": len(successes) + len(failures),
            "success_count": len(successes),
            "successes": successes,
            "failure_count": len(failures),
            **({"failures": failures} if failures else {}),
            "pending_count": 0,
            "x_member": member,
        }
        self.store.put_status(status)
        return _json({k: v for k, v in status.items() if k != "x_member"}, 202)
