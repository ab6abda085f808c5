"""The gateway's configuration: one YAML/JSON file, validated when it is loaded.

Every problem is one ``ConfigError`` line naming the file and the dotted key, e.g.
``gateway.yaml: `throttle.requests`: not a rate limit: '20 per min' ...``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


TAXII_PASSWORD_ENV = "DISTILLWATCH_TAXII_PASSWORD"
"""Where the TAXII password is read from by default (as ``intel push``/``intel pull``)."""
_COLLECTION_ID = re.compile(r"^[A-Za-z0-9._~-]+$")
_MEMBER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
"""A member name, as ``share.pattern.group_name`` checks it (the gateway cannot import share)."""


class IntelTaxiiSettings(BaseModel):
    """A TAXII 2.1 server the gateway pulls received intel from (and pushes sightings to).

    The password is never in the config: it is read from an environment variable
    (``password_env``, default ``DISTILLWATCH_TAXII_PASSWORD``) or a file (``password_file``)
    when ``distillwatch serve`` starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="the TAXII API root, e.g. https://taxii.example/intel/")
    collection: str = Field(description="id of the collection received intel is pulled from")
    sightings_collection: str | None = Field(
        None,
        description="id of the collection our signed sightings are pushed to (the fallback: "
        "every publisher without an entry in `sightings_collections`)",
    )
    sightings_collections: dict[str, str] = Field(
        default_factory=dict,
        description="publisher (member name) → id of the collection the sightings of its "
        "indicators are pushed to",
    )
    user: str | None = Field(None, description="TAXII user (default: intel.member)")
    password_env: str | None = Field(
        None,
        description=f"environment variable holding the password (default {TAXII_PASSWORD_ENV})",
    )
    password_file: Path | None = Field(None, description="file holding the password")
    pull_s: float = Field(300.0, gt=0.0, description="pull new envelopes this often")
    timeout_s: float = Field(30.0, gt=0.0, description="longest wait for the TAXII server")

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "a password is never written in the config: name an environment variable "
                "(`password_env`) or a file (`password_file`) holding it"
            )
        return data

    @field_validator("url")
    @classmethod
    def _api_root(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("//", 1)[1]) < 1:
            raise ValueError(f"must be the http:// or https:// URL of an API root, got {value!r}")
        return value.rstrip("/") + "/"

    @field_validator("collection", "sightings_collection")
    @classmethod
    def _collection_id(cls, value: str | None) -> str | None:
        if value is not None and not _COLLECTION_ID.match(value):
            raise ValueError(f"not a collection id (letters, digits, . _ ~ -): {value!r}")
        return value

    @field_validator("sightings_collections")
    @classmethod
    def _collection_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for member, cid in value.items():
            if not _MEMBER.match(member):
                raise ValueError(f"not a member name (1-64 of A-Za-z0-9._-): {member!r}")
            if not _COLLECTION_ID.match(cid):
                raise ValueError(
                    f"{member}: not a collection id (letters, digits, . _ ~ -): {cid!r}"
                )
        return value

    @field_validator("password_file")
    @classmethod
    def _one_password(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("password_env") is not None:
            raise ValueError("set `password_env` or `password_file`, not both")
        return value

    def collection_url(self, collection: str) -> str:
        """The URL of one of the API root's collections."""
        return f"{self.url}collections/{collection}/"

    def read_password(self) -> str:
        """The password, from the file or the environment; ``ConfigError`` (one line)."""
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                why = getattr(e, "strerror", None) or e
                raise ConfigError(
                    f"cannot read {self.password_file}: {why}", key="intel.taxii.password_file"
                ) from None
            if not text:
                raise ConfigError(f"{self.password_file} is empty", key="intel.taxii.password_file")
            return text
        env = self.password_env or TAXII_PASSWORD_ENV
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"the environment variable {env} (the TAXII password) is not set",
                key="intel.taxii.password_env",
            )
        return value


class IntelSettings(BaseModel):
    """Received threat intel (docs/intel.md): signed bundles from a folder (filled by
    ``intel pull``, an operator, or the ``taxii`` pull), re-read while serving; matched by
    the live engine as ``scan --intel`` matches them. With ``member`` and ``key``, the
    matches go back to the publishers as signed STIX sightings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundles_dir: Path = Field(
        description="folder of signed bundles (*.json), e.g. where `intel pull` writes"
    )
    members: Path = Field(description="members.yaml: trusted members and the trust policy")
    group_secret: Path = Field(description="the sharing group's secret file (hex)")
    refresh_s: float = Field(
        300.0, ge=0.0, description="look for new bundles this often; 0: only at start-up"
    )
    member: str | None = Field(None, min_length=1, description="our member name (signs sightings)")
    key: Path | None = Field(
        None, validate_default=True, description="our Ed25519 signing key (intel keygen)"
    )
    sightings_dir: Path | None = Field(
        None, validate_default=True, description="outbox for the signed sightings of our matches"
    )
    sightings_every_s: float = Field(
        3600.0, gt=0.0, description="write (and push) the sightings of new matches this often"
    )
    taxii: IntelTaxiiSettings | None = Field(
        None, validate_default=True, description="pull received intel from a TAXII 2.1 server"
    )

    @field_validator("key")
    @classmethod
    def _key_with_member(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "member" in info.data and (value is None) != (info.data["member"] is None):
            raise ValueError("`member` and `key` go together (they sign our sightings)")
        return value

    @field_validator("sightings_dir")
    @classmethod
    def _outbox(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        signs = info.data.get("key") is not None
        if value is None and signs:
            raise ValueError("the outbox for our signed sightings is needed with `member`/`key`")
        if value is not None and not signs and "key" in info.data:
            raise ValueError("sightings need `member` and `key` (they sign them)")
        return value

    @field_validator("taxii")
    @classmethod
    def _taxii_user(
        cls, value: IntelTaxiiSettings | None, info: ValidationInfo
    ) -> IntelTaxiiSettings | None:
        if value is None:
            return value
        member = info.data.get("member")
        if value.user is None and member is None:
            raise ValueError("set `user` (our TAXII account), or `intel.member`")
        if value.sightings_collection is not None and info.data.get("key") is None:
            raise ValueError("`sightings_collection` needs `intel.member` and `intel.key`")
        if value.sightings_collections and info.data.get("key") is None:
            raise ValueError("`sightings_collections` needs `intel.member` and `intel.key`")
        return value

    @property
    def taxii_user(self) -> str:
        """Our TAXII account: ``taxii.user``, else our member name."""
        assert self.taxii is not None
        return self.taxii.user or self.member or ""


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
                        "key": fix(config.intel.key),
                        "sightings_dir": fix(config.intel.sightings_dir),
                        "taxii": (
                            None
                            if config.intel.taxii is None
                            else config.intel.taxii.model_copy(
                                update={"password_file": fix(config.intel.taxii.password_file)}
                            )
                        ),
                    }
                )
            ),
        }
    )
