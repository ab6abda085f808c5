"""The admin API under ``/admin`` (bearer-token authenticated).

- ``GET /admin/accounts/{id}``: the account's verdict (score, action, reasons, signals), its
  override and any engine failure;
- ``PUT /admin/accounts/{id}/override`` ``{"action": "allow"|"block", "reason": "..."}``:
  allow-list / appeal granted, or force block; ``DELETE`` removes it;
- ``POST /admin/policy/reload`` (optional ``{"path": "..."}``): load the policy again and
  re-decide every account, without a restart.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from distillwatch.errors import PolicyError
from distillwatch.gateway.body import BadBodyError, parse_object, read_body
from distillwatch.gateway.config import GatewayConfig
from distillwatch.gateway.live import LiveEngine
from distillwatch.gateway.overrides import OVERRIDE_ACTIONS
from distillwatch.policy import load_policy
from distillwatch.respond.errors import Refusal, bad_request, unauthorized


def _json(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def _refuse(refusal: Refusal) -> Response:
    return Response(refusal.encode(), status_code=refusal.status, media_type="application/json")


def admin_routes(config: GatewayConfig, live: LiveEngine, token: str) -> list[Route]:
    expected = f"Bearer {token}".encode()

    def authorized(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), expected)

    async def account(request: Request) -> Response:
        if not authorized(request):
            return _refuse(unauthorized("Admin token missing or wrong."))
        account_id = request.path_params["account_id"]
        verdict = live.verdict(account_id)
        override = live.overrides.get(account_id)
        return _json(
            {
                "account_id": account_id,
                "known": verdict is not None,
                "verdict": msgspec.to_builtins(verdict) if verdict is not None else None,
                "override": (
                    {"action": override.action.value, "reason": override.reason}
                    if override is not None
                    else None
                ),
                "engine_error": live.failed.get(account_id),
                "pending": live.pending.get(account_id, 0),
            }
        )

    async def override(request: Request) -> Response:
        if not authorized(request):
            return _refuse(unauthorized("Admin token missing or wrong."))
        account_id = request.path_params["account_id"]
        if request.method == "DELETE":
            return _json({"account_id": account_id, "removed": live.clear_override(account_id)})
        try:
            body = parse_object(await read_body(request, 1 << 16))
        except BadBodyError as e:
            return _refuse(e.refusal)
        wanted, reason = body.get("action"), body.get("reason")
        action = OVERRIDE_ACTIONS.get(wanted) if isinstance(wanted, str) else None
        if action is None:
            return _refuse(bad_request("'action' must be 'allow' or 'block'.", param="action"))
        if not isinstance(reason, str) or not reason.strip():
            return _refuse(bad_request("'reason' must be a non-empty string.", param="reason"))
        live.override(account_id, action, reason.strip())
        return _json({"account_id": account_id, "action": action.value, "reason": reason})

    async def reload_policy(request: Request) -> Response:
        if not authorized(request):
            return _refuse(unauthorized("Admin token missing or wrong."))
        path: Path | None = config.engine.policy
        try:
            raw = await read_body(request, 1 << 16)
            body = parse_object(raw) if raw.strip() else {}
        except BadBodyError as e:
            return _refuse(e.refusal)
        if body.get("path") is not None:
            if not isinstance(body["path"], str):
                return _refuse(bad_request("'path' must be a string.", param="path"))
            path = Path(body["path"])
        try:
            policy = load_policy(path)
        except PolicyError as e:
            return _refuse(bad_request(str(e), param="path"))
        accounts = live.reload_policy(policy)
        return _json(
            {
                "policy": policy.name,
                "version": policy.version,
                "hash": policy.hash,
                "accounts_redecided": accounts,
            }
        )

    return [
        Route("/admin/accounts/{account_id}", account, methods=["GET"]),
        Route("/admin/accounts/{account_id}/override", override, methods=["PUT", "DELETE"]),
        Route("/admin/policy/reload", reload_policy, methods=["POST"]),
    ]
