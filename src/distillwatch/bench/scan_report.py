"""``scan --report``: one self-contained HTML page of a scan's verdicts and campaigns.

The verdict summary (actions, the most suspicious accounts), then one section per campaign:
its picture (``campaign_svg``) beside its evidence by key type, the keys drawn, first and
last seen and volume. Styles come from ``report_html``; nothing is fetched, nothing runs,
and no key value (address, card, client) is written: keys appear as ``A2``-style labels and
scaffold sketches only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from distillwatch.attribute.campaigns import Campaign
from distillwatch.bench.campaign_svg import Picture, families_table, footer, picture, render_svg
from distillwatch.bench.report import Table
from distillwatch.bench.report_html import esc, page, table_html
from distillwatch.errors import DistillwatchError
from distillwatch.records import Action, Verdict

__all__ = ["campaign_section", "render_scan_report", "write_scan_report"]

TOP_ACCOUNTS = 15


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t is not None else "—"


def _verdict_tables(verdicts: Sequence[Verdict], top: int) -> list[Table]:
    counts = {a: 0 for a in Action}
    for v in verdicts:
        counts[v.action] += 1
    total = len(verdicts) or 1
    actions = Table(
        "Actions",
        ["action", "accounts", "share"],
        [[a.value, f"{n:,}", f"{n / total:.1%}"] for a, n in counts.items()],
        "What the policy decided at the end of the log, per account.",
    )
    ranked = sorted(verdicts, key=lambda v: (-v.score, v.account_id))[:top]
    rows = [
        [
            v.account_id,
            f"{v.score:.3f}",
            v.action.value,
            v.campaign_id or "—",
            _when(v.first_action_ts),
            "—" if v.exchanges_before_action is None else f"{v.exchanges_before_action:,}",
            v.reasons[0] if v.reasons else "—",
        ]
        for v in ranked
    ]
    headers = ["account", "score", "action", "campaign", "first action", "served before", "why"]
    return [actions, Table(f"Most suspicious accounts (top {len(ranked)})", headers, rows)]


def _facts(c: Campaign, pic: Picture, actions: Mapping[str, str]) -> Table:
    acted: dict[str, int] = {}
    for a in c.accounts:
        name = actions.get(a, "no verdict")
        acted[name] = acted.get(name, 0) + 1
    order = [a.value for a in reversed(Action)] + ["no verdict"]
    by_action = ", ".join(f"{n:,} {a}" for a in order if (n := acted.get(a, 0)))
    rows = [
        ["accounts", f"{c.size:,}"],
        ["acted on (linker)", f"{c.acted:,}"],
        ["actions at the end", by_action or "—"],
        ["exchanges", f"{c.exchanges:,}"],
        ["first seen", _when(c.first_seen)],
        ["last seen", _when(c.last_seen)],
        ["drawn", footer(pic)],
    ]
    return Table("Campaign", ["", ""], rows)


def _keys_table(pic: Picture) -> Table:
    rows = [
        [k.label, k.family, f"{k.members:,}", f"{k.units:,}", f"{k.weight:.3f}", k.ref or "—"]
        for k in pic.keys
    ]
    headers = ["key", "type", "members holding it", "holders in all", "weight", "sketch"]
    note = (
        "Keys by type and rank, never by value; scaffold keys by their sketch (a hash of the "
        "prompt's folded edge, as in campaigns.jsonl)."
    )
    if pic.more_keys:
        note = f"+{pic.more_keys:,} more shared keys not drawn. " + note
    return Table("Keys drawn", headers, rows, note)


def campaign_section(
    c: Campaign, actions: Mapping[str, str], volumes: Mapping[str, int] | None = None
) -> str:
    """One campaign: its picture beside its facts, evidence by key type and keys drawn."""
    pic = picture(c, actions, volumes)
    evidence = Table(
        "Evidence by key type",
        ["key type", "weight", "shared keys", "drawn"],
        families_table(pic, c),
        "Weight: the linking weight of the keys the members share (docs/attribution.md).",
    )
    caption = (
        f"{footer(pic)}. Circles: accounts (area ∝ exchanges, colour = action); squares: "
        "shared keys (side ∝ members holding it); hover for details."
    )
    if pic.note:
        caption += f" Note: {pic.note}."
    tables = "".join(table_html(t) for t in (_facts(c, pic, actions), evidence, _keys_table(pic)))
    return (
        f'<section id="{esc(c.campaign_id)}"><h2>Campaign <code>{esc(c.campaign_id)}</code>: '
        f"{c.size:,} accounts, {c.acted:,} acted on</h2>\n"
        f'<div class="campaign"><figure>{render_svg(pic)}<figcaption>{esc(caption)}'
        f'</figcaption></figure><div class="facts">{tables}</div></div></section>'
    )


def render_scan_report(
    verdicts: Sequence[Verdict],
    campaigns: Sequence[Campaign] | None,
    about: Sequence[str] = (),
    *,
    top: int = TOP_ACCOUNTS,
) -> str:
    """The page: ``about`` (sentences on the run), the verdict summary, every campaign."""
    body = ["<h1>Scan report (<code>distillwatch scan</code>)</h1>"]
    body.extend(f"<p>{esc(s)}</p>" for s in about)
    body.extend(table_html(t) for t in _verdict_tables(verdicts, top))
    body.extend(campaign_sections(verdicts, campaigns))
    return page("distillwatch scan report", body)


def campaign_sections(
    verdicts: Sequence[Verdict], campaigns: Sequence[Campaign] | None
) -> list[str]:
    """A "Campaigns" heading with links, then every campaign's section, largest first (also
    used by the ``bench detect`` report)."""
    if campaigns is None:
        return ['<h2>Campaigns</h2><p class="note">Campaign linking was off.</p>']
    actions = {v.account_id: v.action.value for v in verdicts}
    volumes = {v.account_id: v.evidence.exchanges for v in verdicts if v.evidence is not None}
    ordered = sorted(campaigns, key=lambda c: (-c.size, c.campaign_id))
    links = ", ".join(f'<a href="#{esc(c.campaign_id)}">{esc(c.campaign_id)}</a>' for c in ordered)
    plural = "" if len(ordered) == 1 else "s"
    head = (
        f"<h2>Campaigns</h2><p>{len(ordered):,} detected campaign{plural}, largest first: "
        f"{links or '—'}</p>"
    )
    return [head, *(campaign_section(c, actions, volumes) for c in ordered)]


def write_scan_report(
    path: Path,
    verdicts: Sequence[Verdict],
    campaigns: Sequence[Campaign] | None,
    about: Sequence[str] = (),
) -> None:
    """Write the page atomically (a failed run leaves no half page behind)."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        tmp.write_text(render_scan_report(verdicts, campaigns, about), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise DistillwatchError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
