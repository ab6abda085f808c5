"""The gateway's configuration: one YAML/JSON file, validated when it is loaded.

Every problem is one ``ConfigError`` line naming the file and the dotted key, e.g.
``gateway.yaml: `throttle.requests`: not a rate limit: '20 per min' ...``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distillwatch.errors import ConfigError
from distillwatch.gateway.pg_keys import KeysStoreSettings
from distillwatch.respond import ProtectSettings, ThrottleSettings


class LogSettings(BaseModel):
    """Where exchanges go, and how they are made durable (group commit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(Path("gateway-log"), description="folder of JSONL segments")
    store: str | None = Field(
        None, description="write to this event store URL instead (duckdb:///x, postgresql://)"
    )
    batch_max: int = Field(1024, ge=1, le=100_000, description="most exchanges per commit")
    segment_bytes: int = Field(64 << 20, ge=1 << 10, description="roll a new segment past this")
    fsync: bool = Field(True, description="fsync every batch (off: faster, not crash-safe)")


class EngineSettings(BaseModel):
    """The live engine: policy, account metadata, and what happens when it fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Path | None = Field(None, description="policy YAML (default: the shipped one)")
    accounts: Path | None = Field(None, description="accounts file (spec format) for signals")
    on_error: Literal["open", "closed"] = Field(
        "open",
        description="engine failed or lagging over budget: serve (open) or refuse 503 (closed)",
    )
    decision_budget_ms: float = Field(
        50.0,
        ge=0.0,
        description="how far the engine may lag behind an account (its oldest exchange "
        "not yet observed) before on_error applies; requests never wait for it",
    )
    restore: bool = Field(True, description="replay the log into the engine at start-up")
    campaigns: bool = Field(
        False, description="link accounts into campaigns (distillwatch.attribute), as scan does"
    )


class AdminSettings(BaseModel):
    """The admin API under ``/admin``; off unless a token is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str | None = Field(None, min_length=16, description="bearer token for /admin")
    overrides: Path | None = Field(
        None, description="overrides file (default: overrides.json in the log folder)"
    )


class IntelSettings(BaseModel):
    """Received threat intel (docs/intel.md): signed bundles from a folder, re-read while
    serving; matched by the live engine as ``scan --intel`` matches them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundles_dir: Path = Field(
        description="folder of signed bundles (*.json), e.g. where `intel pull` writes"
    )
    members: Path = Field(description="members.yaml: trusted members and the trust policy")
    group_secret: Path = Field(description="the sharing group's secret file (hex)")
    refresh_s: float = Field(
        300.0, ge=0.0, description="look for new bundles this often; 0: only at start-up"
    )


AccountSource = Literal["key", "user_id", "team_id", "end_user_id", "org_id", "key_alias"]


class LiteLLMSettings(BaseModel):
    """LiteLLM's Generic Guardrail API and ``generic_api`` log webhook under ``/litellm``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str | None = Field(
        None, min_length=16, description="bearer token LiteLLM sends (set it to enable /litellm)"
    )
    account_from: list[AccountSource] = Field(
        default_factory=lambda: list[AccountSource](["key", "user_id", "team_id"]),
        min_length=1,
        description="where the account id comes from, first found wins: key (the virtual "
        "key's hash matched against the keys file), or a LiteLLM id used as the account id",
    )
    unmapped: Literal["pass", "block"] = Field(
        "pass", description="guardrail answer when no account can be found for a call"
    )
    max_body_bytes: int = Field(16 << 20, ge=1, description="larger webhook bodies get 413")


class GatewayConfig(BaseModel):
    """Everything ``distillwatch serve`` needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str = Field(
        description="base URL of the OpenAI-compatible upstream, e.g. http://h/v1"
    )
    upstream_api_key: str | None = Field(None, description="sent upstream as the bearer token")
    keys: Path | None = Field(None, description="API keys file: key -> account (YAML or JSON)")
    keys_store: KeysStoreSettings | None = Field(
        None, description="read API keys from a PostgreSQL table instead of a file"
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(4 << 20, ge=1, description="larger request bodies get 413")
    upstream_timeout_s: float = Field(60.0, gt=0, description="longest wait for upstream bytes")
    connect_timeout_s: float = Field(5.0, gt=0)
    trust_forwarded_for: bool = Field(False, description="take the client IP from X-Forwarded-For")
    replay_clock: bool = Field(
        False,
        description="take each exchange's ts from the X-Distillwatch-Replay-Ts header when sent "
        "(replays and demos only: clients could set their own time)",
    )
    passthrough: list[str] = Field(
        default_factory=list, description="extra /v1 paths forwarded as they are (not logged)"
    )
    log: LogSettings = Field(default_factory=LogSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    protect: ProtectSettings = Field(default_factory=ProtectSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    litellm: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    intel: IntelSettings | None = Field(
        None, description="received threat intel matched by the engine (off when null)"
    )

    @field_validator("upstream")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("//", 1)[1]) < 1:
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("passthrough")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for p in paths:
            if not p.startswith("/v1/"):
                raise ValueError(f"pass-through paths start with /v1/, got {p!r}")
        return paths

    @property
    def upstream_base(self) -> str:
        """The upstream URL without a trailing ``/v1`` (request paths carry it)."""
        return self.upstream.removesuffix("/v1")


def load_config(path: Path | None = None, **overrides: Any) -> GatewayConfig:
    """The config file (YAML or JSON) with command-line ``overrides`` on top; validated."""
    source = str(path) if path is not None else "command line"
    data: dict[str, Any] = {}
    if path is not None:
        data = _read(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        key = ".".join(str(p) for p in err["loc"]) or None
        more = len(e.errors()) - 1
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(msg, source=source, key=key) from None
    base = path.parent if path is not None else Path()
    return _resolve(config, base)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file: {e}", source=path) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"invalid {path.suffix.lstrip('.') or 'YAML'}: {e}", source=path
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of keys", source=path)
    return data


def _resolve(config: GatewayConfig, base: Path) -> GatewayConfig:
    """Relative paths in a config file are relative to the file."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    return config.model_copy(
        update={
            "keys": fix(config.keys),
            "log": config.log.model_copy(update={"dir": fix(config.log.dir)}),
            "admin": config.admin.model_copy(update={"overrides": fix(config.admin.overrides)}),
            "engine": config.engine.model_copy(
                update={
                    "policy": fix(config.engine.policy),
                    "accounts": fix(config.engine.accounts),
                }
            ),
            "intel": (
                None
                if config.intel is None
                else config.intel.model_copy(
                    update={
                        "bundles_dir": fix(config.intel.bundles_dir),
                        "members": fix(config.intel.members),
                        "group_secret": fix(config.intel.group_secret),
                    }
                )
            ),
        }
    )
