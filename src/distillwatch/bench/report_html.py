"""``report.html``: the report's tables and plots in one self-contained file.

Plots are drawn by matplotlib on an Agg canvas (no display, no global backend switch) and
inlined as SVG without the XML prologue, DOCTYPE or namespace URLs, so the page fetches
nothing and names no external address. Every piece of text is passed through ``html.escape``.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from distillwatch.bench.report import (
    MissingDependencyError,
    ReportDoc,
    Table,
    describe_run,
)

if TYPE_CHECKING:
    from distillwatch.bench.metrics import CurvePoint, RocCurve

__all__ = [
    "MAX_PLOTTED_CAMPAIGNS",
    "esc",
    "leakage_svg",
    "page",
    "render_html",
    "require_matplotlib",
    "roc_svg",
    "table_html",
]

INSTALL_HINT = "pip install 'distillwatch[bench]'"

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:80rem;
padding:0 1rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
.note{color:#57606a;font-size:.85rem;max-width:60rem}
.scroll{overflow-x:auto}figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
figcaption{color:#57606a;font-size:.85rem}
.campaign{display:flex;flex-wrap:wrap;gap:0 1.5rem;align-items:flex-start}
.campaign figure{flex:1 1 34rem;max-width:50rem}.campaign .facts{flex:1 1 22rem}
.campaign h2{font-size:1rem}
"""


def require_matplotlib() -> None:
    """Raise ``MissingDependencyError`` (with the install command) when matplotlib is absent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            f"the benchmark report draws its plots with matplotlib, which is not installed: "
            f"{INSTALL_HINT}"
        ) from e


def esc(text: object) -> str:
    """Text safe inside HTML (and XML) elements and attributes."""
    return html.escape(str(text), quote=True)


_esc = esc


def table_html(t: Table) -> str:
    """A titled table as HTML (every cell escaped)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    note = f'<p class="note">{_esc(t.note)}</p>' if t.note else ""
    return (
        f'<h2>{_esc(t.title)}</h2>\n<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{note}"
    )


_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.S)
_SVG_ATTRS = re.compile(r'\s(?:xmlns(?::\w+)?|width|height)="[^"]*"')


def _svg(fig: Any, salt: str) -> str:
    """The figure as inline SVG: no prologue, no namespace URLs, scalable by its viewBox."""
    import matplotlib

    buf = io.StringIO()
    # fixed ids (deterministic output, distinct per figure); text stays text (small, searchable)
    with matplotlib.rc_context({"svg.hashsalt": f"distillwatch-{salt}", "svg.fonttype": "none"}):
        fig.savefig(
            buf,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    svg = _PROLOGUE.sub("", buf.getvalue(), count=1)
    head, rest = svg.split(">", 1)
    return _SVG_ATTRS.sub("", head) + ' role="img">' + rest


def _figure(width: float, height: float) -> Any:
    """A figure on its own Agg canvas: headless, and pyplot's global state is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def roc_svg(roc: Mapping[str, RocCurve | None]) -> str | None:
    """ROC curves of every system, linear and with a log FPR axis; None when none exists."""
    curves = {k: v for k, v in roc.items() if v is not None}
    if not curves:
        return None
    fig = _figure(10.0, 4.2)
    lin, log = fig.subplots(1, 2)
    for name, c in curves.items():
        label = f"{name} (AUC {c.auc:.3f})"
        lin.plot(c.fpr, c.tpr, label=label, drawstyle="steps-post")
        log.plot([max(x, 1e-5) for x in c.fpr], c.tpr, label=label, drawstyle="steps-post")
    lin.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
    lin.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate", ylabel="recall")
    log.set_xscale("log")
    log.set(xlim=(1e-4, 1), ylim=(0, 1.01), xlabel="false-positive rate (log)")
    for x, txt in ((0.001, "0.1 %"), (0.01, "1 %")):
        log.axvline(x, color="#999999", linestyle=":", linewidth=1)
        log.text(x, 0.02, f" {txt}", color="#666666", fontsize=8)
    lin.set_title("ROC of the final score")
    log.set_title("low-FPR region")
    lin.legend(loc="lower right", fontsize=8)
    lin.grid(alpha=0.3)
    log.grid(alpha=0.3)
    return _svg(fig, "roc")


MAX_PLOTTED_CAMPAIGNS = 10
"""The largest campaigns (by served exchanges) get a line each; the rest are summed."""


def _series(curves: Mapping[str, Sequence[CurvePoint]]) -> list[tuple[str, list[CurvePoint]]]:
    """The largest campaigns, then one series summing the others (same time axis)."""
    ranked = sorted(curves.items(), key=lambda kv: (-kv[1][-1][1], kv[0]))
    out = [(cid, list(points)) for cid, points in ranked[:MAX_PLOTTED_CAMPAIGNS]]
    rest = ranked[MAX_PLOTTED_CAMPAIGNS:]
    if rest:
        axis = [p[0] for p in rest[0][1]]
        summed = [
            (t, sum(pts[i][1] for _, pts in rest), sum(pts[i][2] for _, pts in rest))
            for i, t in enumerate(axis)
        ]
        out.append((f"{len(rest)} other campaigns", summed))
    return out


def leakage_svg(curves: Mapping[str, Sequence[CurvePoint]], system: str) -> str | None:
    """Per campaign: cumulative served attack exchanges (dashed) and leaked ones (solid).

    A point is the total at the end of its bucket, so it is drawn there.
    """
    curves = {k: v for k, v in curves.items() if v and v[-1][1] > 0}
    if not curves:
        return None
    axis = [datetime.fromisoformat(p[0]) for p in next(iter(curves.values()))]
    step = (axis[1] - axis[0]).total_seconds() if len(axis) > 1 else 0.0
    days = [((t - axis[0]).total_seconds() + step) / 86400 for t in axis]
    fig = _figure(10.0, 4.6)
    ax = fig.subplots()
    series = _series(curves)
    for i, (name, points) in enumerate(series):
        other = i == MAX_PLOTTED_CAMPAIGNS
        color = "black" if other else f"C{i % 10}"
        x = [0.0, *days]
        ax.plot(x, [0, *(p[2] for p in points)], color=color, label=name, drawstyle="steps-pre")
        ax.plot(
            x, [0, *(p[1] for p in points)], color=color, linestyle="--", alpha=0.45,
            linewidth=1, drawstyle="steps-pre",
        )  # fmt: skip
    ax.set(xlabel="days since the start of the log", ylabel="attack exchanges (cumulative)")
    ax.set_title(f"{system}: served before first action (solid) and served in all (dashed)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2 if len(series) > 6 else 1, loc="upper left")
    return _svg(fig, "leakage")


def page_head(title: str) -> str:
    """The start of a self-contained page (styles inline) up to the opening ``<body>``."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_esc(title)}</title>",
            f"<style>{_STYLE}</style></head><body>",
        ]
    )


def page(title: str, body: Sequence[str]) -> str:
    """A whole self-contained page: ``body`` is already HTML."""
    return "\n".join([page_head(title), *body, "</body></html>"]) + "\n"


def render_html(doc: ReportDoc, tables: Sequence[Table], extra: Sequence[str] = ()) -> str:
    """The whole page: run description, tables, the plots, then ``extra`` HTML sections (the
    campaign pictures)."""
    require_matplotlib()
    roc = roc_svg(doc.roc)
    leak = leakage_svg(doc.leakage_curves, doc.curves_system or "distillwatch")
    parts = [
        page_head("distillwatch bench detect"),
        "<h1>Detection benchmark (<code>distillwatch bench detect</code>)</h1>",
        *(f"<p>{_esc(s)}</p>" for s in describe_run(doc.meta)),
    ]
    parts.extend(table_html(t) for t in tables)
    parts.append("<h2>ROC curves</h2>")
    if roc is not None:
        caption = "Accounts ranked by their final score; attack accounts are the positives."
        parts.append(f"<figure>{roc}<figcaption>{_esc(caption)}</figcaption></figure>")
    else:
        parts.append('<p class="note">No ROC curve: legitimate or attack accounts are absent.</p>')
    parts.append("<h2>Leakage over time per campaign</h2>")
    if leak is not None:
        caption = (
            "Cumulative attack exchanges served per campaign, and those served before the "
            "account's first action (what the attacker got before distillwatch reacted)."
        )
        parts.append(f"<figure>{leak}<figcaption>{_esc(caption)}</figcaption></figure>")
    else:
        parts.append('<p class="note">No leakage curve in this run.</p>')
    parts.extend(extra)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
