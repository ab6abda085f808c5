"""The ``serve`` use case: config file + command-line options → a running gateway."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from distillwatch.errors import ConfigError


def run_serve(
    console: Console,
    *,
    upstream: str | None,
    config: Path | None,
    keys: Path | None,
    host: str | None,
    port: int | None,
    log_dir: Path | None,
    log_level: str,
) -> None:
    try:
        from distillwatch.gateway.config import load_config
        from distillwatch.gateway.serve import serve
    except ImportError as e:
        raise ConfigError(
            f"the gateway needs its extra dependencies ({e.name} is missing): "
            "pip install 'distillwatch[gateway]'"
        ) from e

    overrides: dict[str, object] = {"upstream": upstream, "keys": keys, "host": host, "port": port}
    cfg = load_config(config, **overrides)
    if log_dir is not None:
        cfg = cfg.model_copy(update={"log": cfg.log.model_copy(update={"dir": log_dir})})
    where = cfg.log.store or str(cfg.log.dir)
    intel = None
    if cfg.intel is not None:  # the gateway cannot import share/: the feed is built here
        from distillwatch.share.feed import BundleFolder

        intel = BundleFolder.open(
            cfg.intel.bundles_dir, members=cfg.intel.members, group_secret=cfg.intel.group_secret
        )

    def announce() -> None:
        console.print(
            f"distillwatch gateway on http://{cfg.host}:{cfg.port} → {cfg.upstream}; "
            f"exchanges → {where}; engine fails {cfg.engine.on_error}",
            markup=False,
        )

    serve(cfg, log_level=log_level, announce=announce, intel=intel)
