"""``distillwatch bench``: measure detection on simulated traffic built from real data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from distillwatch.cli.errors import fail, handle_errors

bench_app = typer.Typer(
    no_args_is_help=True,
    help="Benchmarks: detection quality against baselines on held-out simulated traffic.",
)


def _console() -> Console:
    from distillwatch.cli.main import console

    return console


@bench_app.command("detect")
@handle_errors
def detect(
    scenario: Annotated[
        str, typer.Option(help="Scenario: a packaged name (default, evasive, demo) or a YAML file.")
    ] = "default",
    split: Annotated[
        str, typer.Option(help="Data split the traffic is built from: test (held out), dev, all.")
    ] = "test",
    out: Annotated[Path, typer.Option(help="Folder for logs, verdicts and the report.")] = Path(
        "bench-out"
    ),
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 7,
    scale: Annotated[float, typer.Option(min=0.001, help="Population multiplier.")] = 1.0,
    days: Annotated[
        float | None, typer.Option(min=0.05, help="Simulated days (default: the scenario's).")
    ] = None,
    systems: Annotated[
        str,
        typer.Option(
            help="Comma-separated systems to compare: distillwatch, distillwatch-metadata-only, "
            "distillwatch-no-accounts (no accounts file), rate-limit, prada, mmd."
        ),
    ] = "distillwatch,distillwatch-metadata-only,distillwatch-no-accounts,rate-limit,prada,mmd",
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML for distillwatch (default: the shipped one).")
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(help="Markdown file whose `bench_detect` section gets the results table."),
    ] = None,
    campaigns: Annotated[
        bool,
        typer.Option(
            "--campaigns/--no-campaigns",
            help="Link accounts into campaigns in distillwatch (off: per-account ablation).",
        ),
    ] = True,
) -> None:
    """Generate held-out traffic, replay it causally through distillwatch and the baselines,
    and report FPR per legitimate profile, recall and leakage per attack profile, campaign
    recall, ROC AUC, recall at 0.1 % and 1 % FPR, and time to first action — as JSON,
    markdown and an HTML report with plots.
    """
    from distillwatch.bench.run import BenchConfig, run_bench
    from distillwatch.bench.sections import record_section

    console = _console()
    names = tuple(s.strip() for s in systems.split(",") if s.strip())
    if not names:
        raise fail("--systems names no system")
    cfg = BenchConfig(
        scenario=scenario, out=out, split=split, seed=seed, scale=scale, days=days,
        systems=names, policy=policy, campaigns=campaigns,
    )  # fmt: skip
    result = run_bench(cfg, say=lambda msg: console.print(f"[dim]·[/] {msg}"))
    table = Table(title=f"{scenario}, {split} split, seed {seed}, scale {scale:g}")
    for col in ("system", "FPR", "recall", "ROC AUC", "recall@1%FPR", "leakage", "campaigns"):
        table.add_column(col, justify="left" if col == "system" else "right")
    for m in result.metrics:
        table.add_row(*m.summary_row())
    console.print(table)
    console.print(
        f"report: {result.report.html}  ·  {result.report.markdown}  ·  {result.report.json}"
    )
    if record is not None:
        record_section(record, "bench_detect", result.report.markdown.read_text(encoding="utf-8"))
        console.print(f"recorded in {record}")


@bench_app.command("calibrate")
@handle_errors
def calibrate(
    scenarios: Annotated[
        str, typer.Option(help="Comma-separated scenarios whose dev-split traffic to fit on.")
    ] = "default,evasive",
    out: Annotated[Path, typer.Option(help="Folder for the generated dev logs.")] = Path(
        "bench-calibrate"
    ),
    write: Annotated[
        Path, typer.Option(help="Combiner file to write (the engine reads detect/combiner.json).")
    ] = Path("combiner.json"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 11,
    scale: Annotated[float, typer.Option(min=0.001, help="Population multiplier.")] = 1.0,
    prior: Annotated[
        float | None,
        typer.Option(
            help="Share of active accounts assumed to distil (sets the intercept); default: the "
            "largest at which the dev split's FPR stays within --max-fpr."
        ),
    ] = None,
    max_fpr: Annotated[
        float, typer.Option(help="FPR ceiling on dev when choosing the prior.")
    ] = 0.0005,
) -> None:
    """Fit the score combiner (non-negative logistic weights per signal) on DEV-split traffic
    only, with and without prompt text, with and without the accounts file, and write it as
    JSON."""
    from distillwatch.bench.calibrate import KINDS, CalibrateConfig, describe
    from distillwatch.bench.calibrate import calibrate as run

    console = _console()
    names = tuple(s.strip() for s in scenarios.split(",") if s.strip())
    if not names:
        raise fail("--scenarios names no scenario")
    cfg = CalibrateConfig(
        scenarios=names, out=out, write=write, seed=seed, scale=scale, prior=prior,
        max_fpr=max_fpr,
    )  # fmt: skip
    doc = run(cfg, say=lambda msg: console.print(f"[dim]·[/] {msg}"))
    table = Table(title=f"combiner fitted on {', '.join(names)} (dev split, seed {seed})")
    table.add_column("signal")
    for kind in (k for k in KINDS if k in doc["models"]):
        table.add_column(f"weight ({kind})", justify="right")
    for row in describe(doc):
        table.add_row(*row)
    console.print(table)
    for name, m in doc["models"].items():
        console.print(
            f"{name}: {m['accounts']} accounts, {m['rows']} snapshots, L2 {m['l2']}, "
            f"cross-validated snapshot AUC {m['cv_auc_snapshots']}"
        )
    own = {k: m["prior"] for k, m in doc["models"].items() if "prior" in m}
    console.print(
        f"prior {doc['prior']} ({doc['fitted_on']['prior_rule']})"
        + "".join(f"; {k}: {v}" for k, v in own.items())
        + f"; written: {write}"
    )
