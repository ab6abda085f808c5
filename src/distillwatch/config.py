"""Settings: defaults, overridden by ``DISTILLWATCH_*`` environment variables, validated early."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from distillwatch.errors import ConfigError


class Settings(BaseSettings):
    """Process-wide settings. Command-line options override them per run.

    >>> Settings().batch_size
    8192
    """

    model_config = SettingsConfigDict(env_prefix="DISTILLWATCH_", extra="forbid", frozen=True)

    batch_size: int = Field(8192, ge=1, le=1_000_000, description="records per micro-batch")
    lateness_s: float = Field(300.0, ge=0.0, description="disorder absorbed before re-sorting")
    sort_memory: str = Field(
        "1GB",
        pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$",
        description="memory for the out-of-core sort before it spills",
    )
    store: str = Field("distillwatch.duckdb", min_length=1, description="event store URL")
    data_dir: Path | None = Field(None, description="the shared/data folder of real prompts")


def load_settings() -> Settings:
    """Settings from the environment; a bad value is a ``ConfigError`` naming the variable."""
    try:
        return Settings()
    except ValidationError as e:
        err = e.errors()[0]
        key = f"DISTILLWATCH_{str(err['loc'][0]).upper()}" if err["loc"] else "DISTILLWATCH_*"
        raise ConfigError(err["msg"], source="environment", key=key) from e
