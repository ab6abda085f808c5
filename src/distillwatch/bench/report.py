"""The report of ``distillwatch bench detect``: ``metrics.json``, ``report.md`` and ``report.html``.

``metrics.json`` holds every system's ``Metrics``, the ROC points, the leakage curves and the
run's metadata (``load_report`` reads it back). ``report.md`` compares the systems side by side
(an overall table, then per-profile and per-campaign tables) and is what gets pasted into
``docs/benchmarks.md``. ``report.html`` is self-contained: the same tables and matplotlib
plots inlined as SVG (``report_html``). matplotlib is imported only by ``write_report``, so
importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from distillwatch.attribute.campaigns import Campaign
from distillwatch.bench.metrics import (
    BenchError,
    CampaignMetrics,
    CurvePoint,
    Distribution,
    Metrics,
    ProfileMetrics,
    RocCurve,
    num,
    pct,
)
from distillwatch.records import Verdict

__all__ = [
    "MissingDependencyError",
    "ReportDoc",
    "ReportPaths",
    "Table",
    "load_report",
    "render_markdown",
    "tables",
    "write_report",
]

MAX_MARKDOWN_CAMPAIGNS = 25
"""More campaigns than this are listed in the HTML report and the JSON only."""


class MissingDependencyError(BenchError):
    """An optional dependency of the benchmark (the ``bench`` extra) is not installed."""


@dataclass(frozen=True)
class ReportPaths:
    """Where ``write_report`` put the three files."""

    json: Path
    markdown: Path
    html: Path


class ReportDoc(msgspec.Struct, kw_only=True):
    """The content of ``metrics.json``."""

    meta: dict[str, Any]
    systems: list[Metrics]
    roc: dict[str, RocCurve | None] = msgspec.field(default_factory=dict)
    curves_system: str | None = None
    leakage_curves: dict[str, list[CurvePoint]] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells, rendered to markdown and to HTML alike."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    text_columns: int = 1
    """How many leading columns hold names (left-aligned); the rest hold figures."""


def write_report(
    out_dir: Path,
    results: Sequence[Metrics],
    curves: Mapping[str, Sequence[CurvePoint]] | None,
    roc: Mapping[str, RocCurve | None] | None,
    meta: Mapping[str, Any],
    *,
    curves_system: str = "distillwatch",
    campaigns: tuple[Sequence[Verdict], Sequence[Campaign]] | None = None,
) -> ReportPaths:
    """Write ``metrics.json``, ``report.md`` and ``report.html`` into ``out_dir``.

    ``results``: one ``Metrics`` per system; ``roc``: ``roc_points`` per system;
    ``curves``: ``leakage_curve`` of ``curves_system`` (campaign -> points); ``meta``:
    scenario, seed, scale, split, machine, date, timings (``seconds``) and anything else
    JSON can hold; ``campaigns``: ``curves_system``'s verdicts and detected campaigns, drawn
    at the end of the HTML page. Raises ``MissingDependencyError`` before writing anything
    when matplotlib is missing.
    """
    from distillwatch.bench.report_html import render_html, require_matplotlib
    from distillwatch.bench.scan_report import campaign_sections  # it imports this module

    require_matplotlib()
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = ReportDoc(
        meta=dict(meta),
        systems=list(results),
        roc=dict(roc or {}),
        curves_system=curves_system if curves else None,
        leakage_curves={k: list(v) for k, v in (curves or {}).items()},
    )
    paths = ReportPaths(
        json=out_dir / "metrics.json",
        markdown=out_dir / "report.md",
        html=out_dir / "report.html",
    )
    paths.json.write_bytes(msgspec.json.format(msgspec.json.encode(doc, enc_hook=str)) + b"\n")
    paths.markdown.write_text(render_markdown(doc), encoding="utf-8")
    extra = campaign_sections(*campaigns) if campaigns is not None else []
    paths.html.write_text(render_html(doc, tables(doc.systems), extra), encoding="utf-8")
    return paths


def load_report(path: Path) -> ReportDoc:
    """Read a ``metrics.json`` written by ``write_report``."""
    return msgspec.json.decode(path.read_bytes(), type=ReportDoc)


# ---------------------------------------------------------------------------------------------
# tables


def _count(n: int) -> str:
    return f"{n:,}"


def _share(x: float | None, hit: int, of: int) -> str:
    return "—" if x is None else f"{pct(x)} ({_count(hit)}/{_count(of)})"


def duration(seconds: float | None) -> str:
    """Seconds in the largest unit that keeps the number readable.

    >>> duration(42), duration(5400), duration(3 * 86400), duration(None)
    ('42 s', '1.5 h', '3.0 d', '—')
    """
    if seconds is None:
        return "—"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _median(d: Distribution | None, fmt: Callable[[float | None], str]) -> str:
    return "—" if d is None or d.n == 0 else fmt(d.median)


def _exchanges(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}" if x == int(x) else f"{x:,.1f}"


def _overall(systems: Sequence[Metrics]) -> Table:
    rows = [
        [
            m.system,
            _share(m.fpr, m.legit_acted, m.legit_accounts),
            _share(m.recall, m.attack_acted, m.attack_accounts),
            num(m.roc_auc),
            pct(m.recall_at(0.001)),
            pct(m.recall_at(0.01)),
            pct(m.leakage),
            _share(m.campaign_recall, m.campaigns_detected, m.campaigns_total),
            _median(m.exchanges_to_action, _exchanges),
            _median(m.seconds_to_action, duration),
        ]
        for m in systems
    ]
    headers = [
        "system",
        "FPR",
        "recall",
        "ROC AUC",
        "recall @ 0.1 % FPR",
        "recall @ 1 % FPR",
        "leakage",
        "campaigns detected",
        "median exchanges before action",
        "median time to action",
    ]
    note = (
        "FPR and recall: accounts acted on (throttle or stronger at any point of the causal "
        "replay). Leakage: attack exchanges served before the account's first action, of all "
        "served attack exchanges. Exchanges and time before action: acted attack accounts."
    )
    return Table("Overall", headers, rows, note)


def _per_profile(
    systems: Sequence[Metrics],
    kind: str,
    title: str,
    size: Callable[[ProfileMetrics], str],
    size_header: str,
    cell: Callable[[ProfileMetrics], str],
) -> Table | None:
    names: dict[str, str] = {}
    for m in systems:
        for p in m.profiles:
            if p.label == kind:
                names.setdefault(p.profile, size(p))
    if not names:
        return None
    rows = []
    for name in sorted(names):
        row = [name, names[name]]
        for m in systems:
            found = next((p for p in m.profiles if p.label == kind and p.profile == name), None)
            row.append("—" if found is None else cell(found))
        rows.append(row)
    return Table(title, ["profile", size_header, *(m.system for m in systems)], rows)


def _campaigns(systems: Sequence[Metrics]) -> Table | None:
    per_system = [{c.campaign_id: c for c in m.campaigns} for m in systems]
    info: dict[str, CampaignMetrics] = {}
    for by_id in per_system:
        for cid, c in by_id.items():
            info.setdefault(cid, c)
    if not info:
        return None
    rows = []
    for cid in sorted(info):
        c = info[cid]
        row = [cid, ", ".join(c.profiles), _count(c.accounts), _count(c.served)]
        for by_id in per_system:
            found = by_id.get(cid)
            if found is None:
                row.append("—")
            else:
                seen = "yes" if found.detected else "no"
                row.append(f"{seen} ({found.acted}/{found.accounts}) · leak {pct(found.leakage)}")
        rows.append(row)
    headers = ["campaign", "profile", "accounts", "served", *(m.system for m in systems)]
    note = "Per system: detected (accounts acted on / accounts) · leakage."
    return Table("Campaigns", headers, rows, note, text_columns=2)


def _timing(systems: Sequence[Metrics]) -> Table:
    rows = [
        [
            m.system,
            _count(m.seconds_to_action.n),
            duration(m.seconds_to_action.median),
            duration(m.seconds_to_action.p90),
            _exchanges(m.exchanges_to_action.median),
            _exchanges(m.exchanges_to_action.p90),
        ]
        for m in systems
    ]
    headers = [
        "system",
        "acted attack accounts",
        "median time to action",
        "p90 time to action",
        "median exchanges before action",
        "p90 exchanges before action",
    ]
    return Table("Time to first action", headers, rows, "From each account's first exchange.")


def _coverage(systems: Sequence[Metrics]) -> Table | None:
    rows = [
        [
            m.system,
            _count(m.missing_verdicts),
            _count(m.missing_eba),
            _count(m.unlabelled_verdicts),
            _count(m.unlabelled_active),
            _count(m.inactive_labelled),
        ]
        for m in systems
    ]
    if all(set(r[1:]) == {"0"} for r in rows):
        return None
    headers = [
        "system",
        "labelled accounts without verdict",
        "acted without exchanges_before_action",
        "verdicts without label",
        "active accounts without label",
        "labelled accounts without exchanges",
    ]
    note = (
        "Accounts without verdict count as not acted on with score 0; acted accounts without "
        "exchanges_before_action leak all their served exchanges; the last three are ignored."
    )
    return Table("Coverage", headers, rows, note)


def tables(systems: Sequence[Metrics]) -> list[Table]:
    """Every table of the report, in order (markdown and HTML render the same list)."""
    legit = _per_profile(
        systems,
        "legit",
        "False-positive rate per legitimate profile",
        lambda p: _count(p.accounts),
        "accounts",
        lambda p: _share(p.fpr, p.acted, p.accounts),
    )
    recall = _per_profile(
        systems,
        "attack",
        "Recall per attack profile",
        lambda p: _count(p.accounts),
        "accounts",
        lambda p: _share(p.recall, p.acted, p.accounts),
    )
    leakage = _per_profile(
        systems,
        "attack",
        "Leakage per attack profile",
        lambda p: _count(p.served),
        "served exchanges",
        lambda p: pct(p.leakage),
    )
    found = [_overall(systems), legit, recall, leakage, _campaigns(systems), _timing(systems)]
    found.append(_coverage(systems))
    return [t for t in found if t is not None]


# ---------------------------------------------------------------------------------------------
# markdown


def md_escape(text: str) -> str:
    """Text that markdown shows as it is inside a table: no column breaks, no HTML tags.

    >>> md_escape("a|b <c>")
    'a\\\\|b &lt;c&gt;'
    """
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _md_table(t: Table) -> str:
    right = [i >= t.text_columns for i in range(len(t.headers))]
    lines = [
        "| " + " | ".join(md_escape(h) for h in t.headers) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
        *("| " + " | ".join(md_escape(c) for c in row) + " |" for row in t.rows),
    ]
    return "\n".join(lines)


def describe_run(meta: Mapping[str, Any]) -> list[str]:
    """Sentences about the run (scenario, size, policy, machine, timings) from ``meta``."""
    out = []
    what = [
        f"{label} `{meta[key]}`" if key in ("scenario", "split") else f"{label} {meta[key]}"
        for key, label in (("scenario", "scenario"), ("split", "split"), ("seed", "seed"))
        if key in meta
    ]
    if "scale" in meta:
        what.append(
            f"scale {meta['scale']:g}"
            if isinstance(meta["scale"], float)
            else f"scale {meta['scale']}"
        )
    if what:
        out.append("Traffic: " + ", ".join(what) + ".")
    size = [
        f"{meta[key]:,} {label}" if isinstance(meta[key], int) else f"{meta[key]} {label}"
        for key, label in (
            ("exchanges", "exchanges"),
            ("legit_accounts", "legitimate accounts"),
            ("attack_accounts", "attack accounts"),
        )
        if key in meta
    ]
    if size:
        out.append("Log: " + ", ".join(size) + ".")
    if "policy" in meta:
        out.append(f"distillwatch policy: {meta['policy']}.")
    where = [str(meta[k]) for k in ("machine", "date") if k in meta]
    if where:
        out.append("Measured on " + ", ".join(where) + ".")
    seconds = meta.get("seconds")
    if isinstance(seconds, Mapping) and seconds:
        out.append(
            "Wall time: " + ", ".join(f"{k} {duration(float(v))}" for k, v in seconds.items()) + "."
        )
    known = {"scenario", "split", "seed", "scale", "exchanges", "legit_accounts"}
    known |= {"attack_accounts", "policy", "machine", "date", "seconds"}
    extra = [f"{k}: {v}" for k, v in meta.items() if k not in known]
    if extra:
        out.append("; ".join(extra) + ".")
    return out


def render_markdown(doc: ReportDoc) -> str:
    """The markdown report: run description, then every table (campaigns when few)."""
    run = md_escape(" ".join(describe_run(doc.meta)))
    parts = ["## Detection (`distillwatch bench detect`)", run]
    for t in tables(doc.systems):
        if t.title == "Campaigns" and len(t.rows) > MAX_MARKDOWN_CAMPAIGNS:
            parts.append(
                f"### Campaigns\n\n{len(t.rows)} campaigns: see `report.html` or `metrics.json`."
            )
            continue
        block = f"### {t.title}\n\n{_md_table(t)}"
        if t.note:
            block += f"\n\n{t.note}"
        parts.append(block)
    return "\n\n".join(p for p in parts if p) + "\n"
