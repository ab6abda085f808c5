"""``distillwatch simulate``: write a labelled exchange log from a scenario (the benchmark's input).

distillwatch simulate --scenario default --out sim/ --seed 7 --scale 1 --split test

``--out`` is a folder (``exchanges.jsonl.gz``, ``accounts.jsonl``, ``labels.jsonl`` in it),
or the exchanges file itself, whose name picks the format as ``scan --out`` does
(``.parquet``, ``.jsonl.gz`` or ``.jsonl``), with ``accounts.jsonl`` and ``labels.jsonl``
written next to it:

distillwatch simulate --scenario fullscale --out big/exchanges.parquet
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from distillwatch.bench.scenario import load_scenario
from distillwatch.bench.sources import check_split, find_data_dir
from distillwatch.bench.traffic import EXCHANGES_NAME, Generated, generate
from distillwatch.cli.render import scan_progress
from distillwatch.errors import ConfigError
from distillwatch.log import read_labels

# --out names the exchanges file when it ends in one of these (else it is a folder)
LOG_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl.gz": "jsonl.gz", ".jsonl": "jsonl"}
FORMATS = ("jsonl.gz", "jsonl", "parquet")


def log_target(out: Path, fmt: str | None = None) -> tuple[Path, str]:
    """The folder and the exchanges file name that ``--out`` (and a format, if given) ask for.

    >>> log_target(Path("sim"))
    (PosixPath('sim'), 'exchanges.jsonl.gz')
    >>> log_target(Path("big/exchanges.parquet"))
    (PosixPath('big'), 'exchanges.parquet')
    >>> log_target(Path("sim"), "parquet")
    (PosixPath('sim'), 'exchanges.parquet')
    """
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}", key="format")
    named = next((f for suffix, f in LOG_SUFFIXES.items() if out.name.endswith(suffix)), None)
    if named is None or out.is_dir() or out.name in LOG_SUFFIXES:
        return out, EXCHANGES_NAME if fmt is None else f"exchanges.{fmt}"
    if fmt is not None and fmt != named:
        raise ConfigError(f"--out {out} is a {named} file name but the format is {fmt}")
    return out.parent, out.name


def run_simulate(
    console: Console,
    *,
    scenario: str,
    out: Path,
    seed: int,
    scale: float,
    split: str,
    days: float | None = None,
    quiet: bool = False,
    fmt: str | None = None,
) -> Generated:
    """Load and check the scenario, generate its log into ``out``, print what is in it.

    ``out`` is a folder or the exchanges file (``log_target``); ``fmt`` (``jsonl.gz``,
    ``jsonl``, ``parquet``) picks the exchanges format when ``out`` is a folder.
    """
    folder, name = log_target(out, fmt)
    sc = load_scenario(scenario)  # a bad file fails here, before anything is written
    part = check_split(split)
    data_dir = find_data_dir()
    where = f"real prompts and traces from {data_dir}" if data_dir else "the packaged sample"
    if not quiet:
        console.print(
            f"scenario [bold]{sc.name}[/] × {scale:g}, seed {seed}, {part} split, from {where}"
        )
    started = time.perf_counter()
    run = functools.partial(
        generate,
        folder,
        exchanges_name=name,
        scenario=sc,
        seed=seed,
        scale=scale,
        days=days,
        split=part,
        data_dir=data_dir,
    )
    if quiet:
        gen = run()
    else:
        with scan_progress(console) as progress:
            task = progress.add_task("generating", total=None)
            gen = run(on_progress=lambda n: progress.update(task, completed=n))
            progress.update(task, total=gen.exchanges, completed=gen.exchanges)
    seconds = time.perf_counter() - started
    console.print(
        f"{gen.exchanges:,} exchanges from {gen.legit_accounts:,} legitimate and "
        f"{gen.attack_accounts:,} attacking accounts in {seconds:.1f} s → {out}",
        markup=False,
    )
    if not quiet:
        console.print(population_table(gen))
    return gen


def population_table(gen: Generated) -> Table:
    """Accounts per labelled profile, and campaigns per attack profile."""
    labels = read_labels(gen.labels_path)
    accounts: Counter[tuple[str, str]] = Counter()
    campaigns: dict[str, set[str]] = {}
    for lb in labels.values():
        key = (lb.label, lb.profile or lb.label)
        accounts[key] += 1
        if lb.campaign_id is not None:
            campaigns.setdefault(key[1], set()).add(lb.campaign_id)
    table = Table()
    for col in ("profile", "label", "accounts", "campaigns"):
        table.add_column(col, justify="left" if col in ("profile", "label") else "right")
    for (kind, profile), n in sorted(accounts.items()):
        style = "red" if kind == "attack" else ""
        camps = str(len(campaigns.get(profile, ()))) if kind == "attack" else "–"
        table.add_row(profile, kind, f"{n:,}", camps, style=style)
    return table
