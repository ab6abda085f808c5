"""The ``serve`` use case: config file + command-line options → a running gateway."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from distillwatch.errors import ConfigError

if TYPE_CHECKING:
    from distillwatch.gateway.config import GatewayConfig
    from distillwatch.share.feed import BundleFolder


def build_intel_feed(cfg: GatewayConfig, source: Path | None = None) -> BundleFolder:
    """The intel source the config's ``intel`` section describes (the gateway cannot import
    ``share``): the bundle folder, its TAXII pull and the sightings outbox (each publisher's
    sightings pushed to its collection, else the fallback). Every problem is one line
    (``ConfigError`` naming ``source`` and the key, or ``IntelError``)."""
    from distillwatch.share.feed import BundleFolder, TaxiiPull
    from distillwatch.share.sightings import Push, SightingsOutbox
    from distillwatch.share.taxii_client import push_envelope

    intel = cfg.intel
    assert intel is not None
    pull = push = None
    pushes: dict[str, Push] = {}
    if intel.taxii is not None:
        taxii = intel.taxii
        try:
            password = taxii.read_password()
        except ConfigError as e:
            raise ConfigError(e.reason, source=source or "command line", key=e.key) from None
        user = intel.taxii_user
        pull = TaxiiPull(
            taxii.collection_url(taxii.collection),
            user,
            password,
            intel.bundles_dir,
            timeout_s=taxii.timeout_s,
        )
        to: dict[str, Push] = {}  # one push per collection: a failing one is skipped once

        def push_to(cid: str) -> Push:
            if cid not in to:
                to[cid] = functools.partial(
                    push_envelope,
                    taxii.collection_url(cid),
                    user,
                    password,
                    timeout_s=taxii.timeout_s,
                )
            return to[cid]

        if taxii.sightings_collection is not None:
            push = push_to(taxii.sightings_collection)
        pushes = {m: push_to(cid) for m, cid in sorted(taxii.sightings_collections.items())}
    outbox = None
    if intel.member is not None and intel.key is not None and intel.sightings_dir is not None:
        outbox = SightingsOutbox.open(
            intel.sightings_dir, member=intel.member, key=intel.key, push=push, pushes=pushes
        )
    feed = BundleFolder.open(
        intel.bundles_dir,
        members=intel.members,
        group_secret=intel.group_secret,
        taxii=pull,
        outbox=outbox,
    )
    unknown = sorted(set(pushes) - set(feed.policy.signers))
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: not a member in {intel.members} (a publisher's sightings "
            "go to its collection)",
            source=source or "command line",
            key="intel.taxii.sightings_collections",
        )
    return feed


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
        intel = build_intel_feed(cfg, config)

    def announce() -> None:
        console.print(
            f"distillwatch gateway on http://{cfg.host}:{cfg.port} → {cfg.upstream}; "
            f"exchanges → {where}; engine fails {cfg.engine.on_error}",
            markup=False,
        )

    serve(cfg, log_level=log_level, announce=announce, intel=intel)
