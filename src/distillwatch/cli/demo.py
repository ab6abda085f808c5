"""``distillwatch demo``: generate a small realistic log, scan it, show what was caught."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from distillwatch.attribute import write_campaigns
from distillwatch.bench.sources import find_data_dir
from distillwatch.bench.traffic import generate
from distillwatch.cli.render import action_counts, scan_progress, suspicious_table
from distillwatch.cli.scan import (
    ScanInput,
    campaigns_of,
    campaigns_path,
    run_scan,
    write_report,
    write_verdicts,
)
from distillwatch.config import load_settings
from distillwatch.log import read_labels
from distillwatch.policy import load_policy
from distillwatch.records import Action, Label, Verdict


def run_demo(console: Console, *, out: Path, seed: int, scale: float, top: int) -> None:
    data_dir = find_data_dir()
    where = f"real prompts and traces from {data_dir}" if data_dir else "the packaged sample"
    console.print(f"[bold]1/3[/] generating two days of API traffic from {where} …")
    with scan_progress(console) as progress:
        task = progress.add_task("generating", total=None)
        gen = generate(
            out,
            seed=seed,
            scale=scale,
            data_dir=data_dir,
            on_progress=lambda n: progress.update(task, completed=n),
        )
        progress.update(task, total=gen.exchanges, completed=gen.exchanges)
    console.print(
        f"    {gen.exchanges:,} exchanges from {gen.legit_accounts} legitimate and "
        f"{gen.attack_accounts} attacking accounts → {gen.exchanges_path}"
    )

    console.print("[bold]2/3[/] scanning it as a causal replay (only the past is visible) …")
    settings = load_settings()
    policy = load_policy(None)
    source = ScanInput(
        log=gen.exchanges_path, store_url=None, accounts=gen.accounts_path, skip_invalid=False
    )
    with scan_progress(console) as progress:
        task = progress.add_task("scanning", total=gen.exchanges)
        result = run_scan(source, policy, settings, on_progress=lambda n: progress.advance(task, n))
    verdicts_path = out / "verdicts.jsonl"
    write_verdicts(verdicts_path, result.verdicts)
    rate = result.exchanges / result.seconds if result.seconds else 0.0
    console.print(
        f"    {len(result.verdicts):,} verdicts in {result.seconds:.1f} s "
        f"({rate:,.0f} exchanges/s) → {verdicts_path}"
    )
    console.print(f"    actions: {action_counts(result.verdicts)}")
    found = campaigns_of(result) or []
    write_campaigns(campaigns_path(verdicts_path), found)
    report = out / "report.html"
    write_report(
        report,
        result.verdicts,
        found,
        policy=policy,
        source=str(gen.exchanges_path),
        exchanges=result.exchanges,
        seconds=result.seconds,
    )
    console.print(
        f"    {len(found)} campaign{'s' if len(found) != 1 else ''} → "
        f"{campaigns_path(verdicts_path)}; a picture of each in {report}"
    )
    if top:
        console.print(suspicious_table(result.verdicts, top))

    console.print("[bold]3/3[/] against the ground truth in labels.jsonl:")
    console.print(outcome_table(result.verdicts, read_labels(gen.labels_path)))
    console.print(
        "[dim]acted = throttled or stronger at the end of the log; "
        "served before = median exchanges served before the first such action. "
        "`distillwatch bench detect` measures the same on held-out traffic against baselines.[/]"
    )


def outcome_table(verdicts: Sequence[Verdict], labels: Mapping[str, Label]) -> Table:
    """Per generator profile: accounts, how many were acted on, how early."""
    acted: Counter[str] = Counter()
    total: Counter[str] = Counter()
    served: defaultdict[str, list[int]] = defaultdict(list)
    kind: dict[str, str] = {}
    for v in verdicts:
        lb = labels.get(v.account_id)
        if lb is None:
            continue
        profile = lb.profile or lb.label
        kind[profile] = lb.label
        total[profile] += 1
        if v.action.rank >= Action.THROTTLE.rank:
            acted[profile] += 1
        if v.exchanges_before_action is not None:
            served[profile].append(v.exchanges_before_action)
    table = Table(show_lines=False)
    for col, just in (
        ("profile", "left"),
        ("label", "left"),
        ("accounts", "right"),
        ("acted on", "right"),
        ("served before (median)", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for profile in sorted(total, key=lambda p: (kind[p] != "attack", p)):
        s = sorted(served[profile])
        median = str(s[len(s) // 2]) if s else "–"
        style = "red" if kind[profile] == "attack" else ""
        share = acted[profile] / total[profile]
        table.add_row(
            profile,
            kind[profile],
            str(total[profile]),
            f"{acted[profile]} ({share:.0%})",
            median,
            style=style,
        )
    return table
