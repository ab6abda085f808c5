"""``distillwatch intel``: export, import and key management for the intel exchange."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from distillwatch.cli.errors import fail, handle_errors

if TYPE_CHECKING:
    from distillwatch.share.export import ExportStats
    from distillwatch.share.sightings_report import SightingsReport

intel_app = typer.Typer(
    no_args_is_help=True,
    help="Threat-intelligence exchange: signed STIX 2.1 bundles of keyed indicators "
    "(docs/intel.md).",
)


def _console() -> Console:
    from distillwatch.cli.main import console

    return console


NowOpt = Annotated[
    str | None, typer.Option(help="Current time, RFC 3339 (default: the wall clock).")
]
SecretOpt = Annotated[
    Path, typer.Option("--group-secret", help="Sharing-group secret file (hex; intel keygen).")
]


@intel_app.command("keygen")
@handle_errors
def keygen(
    member: Annotated[
        str | None, typer.Option(help="Make an Ed25519 signing key for this member name.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the member's key files.")] = Path(),
    group_secret: Annotated[
        Path | None, typer.Option("--group-secret", help="Make a new sharing-group secret here.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Make a member's signing key (NAME.key, NAME.pub) and/or a sharing-group secret."""
    from distillwatch.share.files import keygen_group, keygen_member
    from distillwatch.share.pattern import group_name

    if member is None and group_secret is None:
        raise fail("give --member NAME, --group-secret FILE, or both")
    console = _console()
    if member is not None:
        path, pub = keygen_member(group_name(member), out, force)
        console.print(f"signing key → {path} (keep it private)", markup=False)
        console.print(f"members.yaml entry:\n  {member}:\n    public_key: {pub}", markup=False)
    if group_secret is not None:
        keygen_group(group_secret, force)
        console.print(f"group secret → {group_secret} (share with group members only)")


class ExportFormat(StrEnum):
    stix = "stix"
    misp = "misp"


@intel_app.command("export")
@handle_errors
def export(
    log: Annotated[Path, typer.Argument(help="The scanned exchange log.", show_default=False)],
    campaigns: Annotated[
        Path, typer.Option(help="campaigns.jsonl written by scan.", show_default=False)
    ],
    member: Annotated[str, typer.Option(help="Our member name.", show_default=False)],
    group: Annotated[str, typer.Option(help="Sharing group name.", show_default=False)],
    group_secret: SecretOpt,
    key: Annotated[
        Path | None,
        typer.Option(help="Our signing key (intel keygen); --format stix needs it."),
    ] = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="stix: a signed STIX 2.1 bundle; misp: the bundle as a MISP event (JSON, "
            "unsigned; needs distillwatch\\[misp]).",
        ),
    ] = ExportFormat.stix,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write (default: intel-bundle.json, or intel-event.json for misp).",
            show_default=False,
        ),
    ] = None,
    accounts: Annotated[Path | None, typer.Option(help="Accounts file of the log.")] = None,
    verdicts: Annotated[
        Path | None, typer.Option(help="Verdicts of the scan (campaign confidence).")
    ] = None,
    tlp: Annotated[
        str, typer.Option(help="TLP 2.0 level: clear, green, amber, amber+strict, red.")
    ] = "amber",
    stix: Annotated[
        Path | None, typer.Option(help="Also write the bare STIX bundle (unsigned) here.")
    ] = None,
    ttl_days: Annotated[float, typer.Option(min=0.01, help="Days the envelope is valid.")] = 7.0,
    min_accounts: Annotated[
        int, typer.Option(min=1, help="Campaign accounts that must share an attribute.")
    ] = 2,
    scaffold_k: Annotated[
        int, typer.Option(min=2, help="Campaign accounts that must send a prompt scaffold.")
    ] = 3,
    actors: Annotated[
        Path | None,
        typer.Option(
            help="Actors file (YAML): campaigns attributed to a threat actor, exported as "
            "intrusion sets (docs/intel.md).",
            show_default=False,
        ),
    ] = None,
    now: NowOpt = None,
) -> None:
    """Export detected campaigns as a signed STIX 2.1 bundle of keyed indicators.

    With --format misp, the same bundle converted to a MISP event (docs/intel.md).
    """
    from distillwatch.share.actors import load_actors
    from distillwatch.share.collect import CollectRules
    from distillwatch.share.export import ExportConfig
    from distillwatch.share.files import export_files, parse_now, read_group_secret

    config = ExportConfig(
        member=member,
        group=group,
        group_secret=read_group_secret(group_secret),
        tlp=tlp,
        actors=load_actors(actors) if actors is not None else None,
    )
    if config.actors is not None:
        config.actors.check_file(campaigns)  # a typo fails before the log is read
    rules = CollectRules(min_accounts=min_accounts, scaffold_k=scaffold_k)
    if fmt is ExportFormat.misp:
        from distillwatch.share.misp import export_event

        out = out or Path("intel-event.json")
        stats, misp = export_event(
            campaigns=campaigns,
            log=log,
            accounts=accounts,
            verdicts=verdicts,
            config=config,
            out=out,
            now=parse_now(now),
            rules=rules,
            stix_out=stix,
        )
        _console().print(
            f"{stats.campaigns} campaign(s){_attributed(stats)}, {misp.attributes} MISP "
            "attribute(s) "
            f"[{', '.join(misp.tlp) or 'no TLP'}] → {out} (MISP event, unsigned)",
            markup=False,
        )
        return
    if key is None:
        raise fail("--format stix signs the bundle: give --key (intel keygen)")
    out = out or Path("intel-bundle.json")
    stats = export_files(
        campaigns=campaigns,
        log=log,
        accounts=accounts,
        verdicts=verdicts,
        config=config,
        key=key,
        out=out,
        now=parse_now(now),
        ttl=timedelta(days=ttl_days),
        rules=rules,
        stix_out=stix,
    )
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(stats.indicators.items())) or "none"
    _console().print(
        f"{stats.campaigns} campaign(s){_attributed(stats)}, indicators: {kinds} → {out} "
        f"(signed by {member})",
        markup=False,
    )


def _attributed(stats: ExportStats) -> str:
    """`` (2 attributed to 1 actor(s))`` when an actors file attributed any campaign."""
    if not stats.actors:
        return ""
    return f" ({stats.attributed} attributed to {stats.actors} actor(s))"


@intel_app.command("import")
@handle_errors
def import_(
    bundles: Annotated[
        list[Path], typer.Argument(help="Signed bundles received.", show_default=False)
    ],
    members: Annotated[
        Path, typer.Option(help="members.yaml: trusted members and the trust policy.")
    ],
    group_secret: SecretOpt,
    log: Annotated[Path, typer.Option(help="Local exchange log to match.", show_default=False)],
    accounts: Annotated[Path | None, typer.Option(help="Accounts file of the log.")] = None,
    verdicts: Annotated[
        Path | None, typer.Option(help="Verdicts of a local scan: behaviour rules match them.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Matches to write (JSONL).")] = Path(
        "intel-matches.jsonl"
    ),
    sightings: Annotated[
        Path | None,
        typer.Option(
            help="Write signed STIX sightings to send back here: a file, or an existing folder "
            "(one envelope per publisher)."
        ),
    ] = None,
    member: Annotated[str | None, typer.Option(help="Our member name (sightings).")] = None,
    key: Annotated[Path | None, typer.Option(help="Our signing key (sightings).")] = None,
    now: NowOpt = None,
) -> None:
    """Verify received bundles, match their indicators against a local log, write matches.

    Unsigned, tampered, expired, replayed or unknown-signer bundles are rejected with a reason
    (exit 1 when any was); the accepted ones are still used.
    """
    from distillwatch.share.files import import_files, parse_now, read_group_secret
    from distillwatch.share.trust import load_members

    result = import_files(
        bundles,
        policy=load_members(members),
        group_secret=read_group_secret(group_secret),
        log=log,
        accounts=accounts,
        out=out,
        now=parse_now(now),
        sightings_out=sightings,
        member=member,
        key=key,
        verdicts=verdicts,
    )
    console = _console()
    for path, reason in result.rejected:
        console.print(f"{path}: {reason}", markup=False)
    console.print(
        f"{len(result.accepted)} bundle(s) accepted, {len(result.rejected)} rejected; "
        f"{result.matches} account(s) matched → {out}"
        + (f"; {result.sightings} sighting(s) → {sightings}" if sightings else ""),
        markup=False,
    )
    if result.rejected:
        raise typer.Exit(1)


@intel_app.command("serve")
@handle_errors
def serve(
    config: Annotated[
        Path, typer.Option(help="TAXII server config (YAML; docs/intel.md).", show_default=False)
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 9500,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve signed intel over TAXII 2.1 (discovery at /taxii2/)."""
    import uvicorn

    from distillwatch.share.taxii import TaxiiServer, load_config

    cfg, policy = load_config(config)
    server = TaxiiServer(cfg, policy)
    _console().print(f"TAXII 2.1 on http://{host}:{port}/taxii2/ (api root /{cfg.api_root}/)")
    uvicorn.run(server.app, host=host, port=port, log_level=log_level)


UserOpt = Annotated[str, typer.Option(help="TAXII user (our member name).", show_default=False)]
PasswordOpt = Annotated[
    str,
    typer.Option(envvar="DISTILLWATCH_TAXII_PASSWORD", help="TAXII password.", show_default=False),
]
CollectionOpt = Annotated[
    str,
    typer.Option(
        help="Collection URL: https://host/<api-root>/collections/<id>/", show_default=False
    ),
]


@intel_app.command("push")
@handle_errors
def push(
    bundles: Annotated[list[Path], typer.Argument(help="Signed bundles.", show_default=False)],
    collection: CollectionOpt,
    user: UserOpt,
    password: PasswordOpt,
) -> None:
    """Publish signed bundles to a TAXII 2.1 collection."""
    from distillwatch.share.taxii_client import push as do_push

    stored = do_push(collection, user, password, bundles)
    _console().print(f"{len(bundles)} bundle(s) pushed, {stored} object(s) stored", markup=False)


@intel_app.command("pull")
@handle_errors
def pull(
    collection: CollectionOpt,
    user: UserOpt,
    password: PasswordOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the bundles.")] = Path(
        "intel-in"
    ),
    since: Annotated[
        str | None, typer.Option(help="Only objects added after this time (RFC 3339).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="State file: pull only what is new since the last pull.")
    ] = None,
) -> None:
    """Fetch signed bundles from a TAXII 2.1 collection (verify them with intel import)."""
    from distillwatch.share.files import write_json
    from distillwatch.share.taxii_client import pull as do_pull
    from distillwatch.share.taxii_client import read_state

    after = since or (read_state(state) if state is not None else None)
    result = do_pull(collection, user, password, out, since=after)
    if state is not None and result.last_added:
        write_json(state, {"last_added": result.last_added})
    _console().print(f"{len(result.written)} bundle(s) → {out}", markup=False)


@intel_app.command("sightings")
@handle_errors
def sightings_report(
    members: Annotated[
        Path,
        typer.Option(
            help="members.yaml: the members whose sightings we accept.", show_default=False
        ),
    ],
    member: Annotated[
        str,
        typer.Option(
            help="Our member name: only sightings of our indicators count.", show_default=False
        ),
    ],
    envelopes: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Sightings envelopes received: files, or folders of them (*.json).",
            show_default=False,
        ),
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option(
            help="Also pull the sightings added to this TAXII collection (URL) into --out and "
            "report the whole folder.",
            show_default=False,
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="TAXII user (default: --member).", show_default=False)
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="DISTILLWATCH_TAXII_PASSWORD", help="TAXII password.", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="With --collection: folder for the envelopes.")
    ] = Path("sightings-in"),
    state: Annotated[
        Path | None,
        typer.Option(help="With --collection: state file, pull only what is new since the last."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    now: NowOpt = None,
) -> None:
    """Report the sightings other members sent back of the indicators we published.

    Each envelope is verified against the members file as received intel is (rejected ones
    are listed with their reason: exit 1); per indicator: the members that sighted it, the
    accounts they saw (each member's counts added up), first and last seen (docs/intel.md).
    """
    import json

    from distillwatch.cli.errors import err_console
    from distillwatch.share.files import parse_now, write_json
    from distillwatch.share.pattern import group_name
    from distillwatch.share.sightings_report import envelope_files, read_sightings
    from distillwatch.share.trust import load_members

    group_name(member)
    if not envelopes and collection is None:
        raise fail("give sightings files or folders, or --collection URL")
    policy = load_members(members)
    when = parse_now(now)
    say = err_console if as_json else _console()
    paths = list(envelopes or [])
    if collection is not None:
        from distillwatch.share.taxii_client import pull as do_pull
        from distillwatch.share.taxii_client import read_state

        if not password:
            raise fail("--collection needs --password (or DISTILLWATCH_TAXII_PASSWORD)")
        after = read_state(state) if state is not None else None
        got = do_pull(collection, user or member, password, out, since=after)
        if state is not None and got.last_added:
            write_json(state, {"last_added": got.last_added})
        say.print(f"{len(got.written)} envelope(s) pulled → {out}", markup=False)
        paths.append(out)
    report = read_sightings(envelope_files(paths), policy=policy, member=member, now=when)
    for path, reason in report.rejected:
        say.print(f"{path}: {reason}", markup=False)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=1))
    else:
        _print_sightings(report)
    if report.rejected:
        raise typer.Exit(1)


def _print_sightings(report: SightingsReport) -> None:
    from rich.table import Table

    console = _console()
    if report.indicators:
        table = Table(title=f"Sightings of {report.member}'s indicators", title_justify="left")
        for name, justify in [
            ("indicator", "left"),
            ("members", "right"),
            ("accounts", "right"),
            ("by member", "left"),
            ("first seen", "left"),
            ("last seen", "left"),
        ]:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in report.rows():
            data = row.to_json()
            table.add_row(
                row.indicator_id,
                str(row.members),
                f"{row.accounts:,}",
                ", ".join(f"{m}: {n:,}" for m, n in data["by_member"].items()),
                data["first_seen"] or "",
                data["last_seen"] or "",
            )
        console.print(table)
    left = [
        f"{n} {what}"
        for n, what in [
            (report.duplicates, "duplicate(s) counted once"),
            (report.others, "of other publishers' indicators ignored"),
            (report.malformed, "malformed"),
        ]
        if n
    ]
    console.print(
        f"{report.accepted} envelope(s) accepted, {len(report.rejected)} rejected; "
        f"{report.counted} sighting(s) of {len(report.indicators)} of our indicator(s)"
        + (f" ({'; '.join(left)})" if left else ""),
        markup=False,
    )
