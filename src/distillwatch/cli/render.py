"""Rich renderings for the terminal: the progress bar and the most-suspicious table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from distillwatch.records import Action, Verdict

_ACTION_STYLE = {
    Action.ALLOW: "green",
    Action.MONITOR: "yellow",
    Action.THROTTLE: "orange3",
    Action.PROTECT: "red",
    Action.BLOCK: "bold red",
}


class RateColumn(ProgressColumn):
    """Exchanges per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} exch/s" if speed else "– exch/s", style="cyan")


def scan_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        refresh_per_second=5,
    )


def suspicious_table(verdicts: Sequence[Verdict], top: int) -> Table:
    """The ``top`` accounts by score with their action, timing of first action and reasons."""
    table = Table(title=f"Most suspicious accounts (top {top})", show_lines=False, expand=True)
    table.add_column("account", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("action")
    table.add_column("first action (UTC)", no_wrap=True)
    table.add_column("served before", justify="right")
    table.add_column("why", ratio=1, min_width=40)
    ranked = sorted(verdicts, key=lambda v: (-v.score, v.account_id))[:top]
    for v in ranked:
        first = v.first_action_ts.strftime("%m-%d %H:%M:%S") if v.first_action_ts else "–"
        why = "\n".join(v.reasons[:3]) or "–"
        table.add_row(
            v.account_id,
            f"{v.score:.3f}",
            Text(v.action.value, style=_ACTION_STYLE[v.action]),
            first,
            "–" if v.exchanges_before_action is None else str(v.exchanges_before_action),
            why,
        )
    return table


def action_counts(verdicts: Sequence[Verdict]) -> str:
    counts = {a: 0 for a in Action}
    for v in verdicts:
        counts[v.action] += 1
    return ", ".join(f"{a.value} {n}" for a, n in counts.items())
