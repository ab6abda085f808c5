"""Ablation: what each signal family adds to distillwatch, on held-out traffic.

For every family, the combiner is refitted on the dev-split evidence *without* that family
(``distillwatch bench calibrate`` keeps the evidence matrices) and the test-split log is
replayed with the family's signals removed — with prompt text and metadata-only. Two more
rows: campaign attribution off (its evidence refitted away too), and all signals with
hand-set weights (every weight 1, prior 1 %: the naive-Bayes sum) against the fitted
weights, which justifies the combiner itself.

    distillwatch bench calibrate --scenarios default,evasive,demo --out bench-calibrate \
        --write src/distillwatch/detect/combiner.json
    python bench/ablation.py --calibration bench-calibrate --record docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from distillwatch.attribute.factory import engine_factory
from distillwatch.bench import run as bench_run
from distillwatch.bench.calibrate import Design, fit_model
from distillwatch.bench.metric_records import Metrics
from distillwatch.bench.metrics import activity, evaluate
from distillwatch.bench.sections import record_section
from distillwatch.detect import replay
from distillwatch.detect.scoring import LogOddsScorer
from distillwatch.log import read_accounts, read_exchanges, read_labels
from distillwatch.policy import load_policy
from distillwatch.records import Exchange
from distillwatch.signals import create_signals
from distillwatch.signals.base import Signal

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = "campaign.link"
"""The id under which campaign attribution's evidence enters the score."""


def fitted_scorer(
    designs: dict[str, Design],
    drop: set[str],
    text: frozenset[str],
    prior: float,
    priors: dict[str, float] | None = None,
) -> LogOddsScorer:
    """A combiner refitted on the dev evidence without the signals in ``drop``, each model at
    its operating point in ``priors`` (else ``prior``)."""
    models = {
        name: fit_model(d.without(drop), text, metadata=name == "metadata")
        for name, d in designs.items()
    }
    for name, m in models.items():
        m["prior"] = (priors or {}).get(name, prior)
    doc = {"format": 1, "prior": prior, "text_signals": sorted(text), "models": models}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "combiner.json"
        path.write_text(json.dumps(doc))
        return LogOddsScorer.load(path)


def run_one(
    log: Callable[[], Iterable[list[Exchange]]],
    signals: Callable[[], list[Signal]],
    scorer: LogOddsScorer,
    accounts: dict[str, Any],
    labels: dict[str, Any],
    act: Any,
    name: str,
    campaigns: bool,
) -> Metrics:
    factory = engine_factory(
        load_policy(), accounts, campaigns=campaigns, signals=signals, scorer=scorer
    )
    return evaluate(replay(log, factory).verdicts, labels, act, system=name)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration", type=Path, default=ROOT / "bench-calibrate")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-ablation")
    ap.add_argument(
        "--prior", type=float, help="default: the prior the calibration chose (its combiner.json)"
    )
    ap.add_argument("--record", type=Path, help="markdown file whose `ablation` section to write")
    args = ap.parse_args()

    designs = {n: Design.load(args.calibration / f"design-{n}.npz") for n in ("full", "metadata")}
    priors: dict[str, float] = {}
    if args.prior is None:  # the calibration's operating points, per model
        doc = json.loads((args.calibration / "combiner.json").read_text())
        args.prior = doc["prior"]
        priors = {n: m.get("prior", args.prior) for n, m in doc["models"].items()}
    all_signals = create_signals()
    text = frozenset(s.id for s in all_signals if s.needs_text)
    families: dict[str, set[str]] = {}
    for s in all_signals:
        families.setdefault(s.family, set()).add(s.id)

    cfg = bench_run.BenchConfig(scenario=args.scenario, out=args.out, seed=args.seed,
                                scale=args.scale)  # fmt: skip
    gen = bench_run._generate(cfg, "test", args.seed, args.scale, print)
    accounts = read_accounts(gen.accounts_path)
    labels = read_labels(gen.labels_path)

    def log() -> Iterator[list[Exchange]]:
        return read_exchanges(gen.exchanges_path)

    def stripped() -> Iterator[list[Exchange]]:
        return bench_run._strip(log())

    act = activity(log())
    rows: list[tuple[str, Metrics, Metrics]] = []
    variants: list[tuple[str, set[str], LogOddsScorer | None]] = [
        ("all signals and campaigns, fitted combiner", set(), None),
        ("all, hand-set weights (1 each, prior 1 %)", set(), LogOddsScorer(0.01)),
        ("without campaign attribution", {CAMPAIGN}, None),
    ]
    variants += [(f"without {fam}", ids, None) for fam, ids in sorted(families.items())]
    t0 = time.perf_counter()
    for name, drop, fixed in variants:
        print(f"· {name}")
        scorer = fixed or fitted_scorer(designs, drop, text, args.prior, priors)

        def signals(drop: set[str] = drop) -> list[Signal]:
            return [s for s in create_signals() if s.id not in drop]

        linked = CAMPAIGN not in drop
        full = run_one(log, signals, scorer, accounts, labels, act, name, linked)
        meta = run_one(stripped, signals, scorer, accounts, labels, act, name, linked)
        rows.append((name, full, meta))
    seconds = time.perf_counter() - t0

    head = (
        "| variant | FPR | recall | ROC AUC | recall @ 0.1 % FPR | leakage "
        "| metadata-only recall | metadata-only AUC |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {n} | {pct(f.fpr)} | {pct(f.recall)} | {f.roc_auc or 0:.3f} | "
        f"{pct(f.recall_at(0.001))} | {pct(f.leakage)} | {pct(m.recall)} | "
        f"{m.roc_auc or 0:.3f} |\n"
        for n, f, m in rows
    )
    text_md = (
        "## Ablation: what each signal family adds (`python bench/ablation.py`)\n\n"
        f"Test split of scenario `{args.scenario}` (seed {args.seed}, scale {args.scale:g}: "
        f"{gen.exchanges:,} exchanges, {gen.legit_accounts:,} legitimate and "
        f"{gen.attack_accounts:,} attack accounts). Each row refits the combiner on the dev "
        "split's evidence without the family and replays the test log without its signals "
        "(default policy; priors: "
        + (", ".join(f"{n} {priors[n]:g}" for n in designs) if priors else f"{args.prior:g}")
        + f"). {len(variants)} variants in {seconds:.0f} s.\n\n"
        + head
        + body
    )
    print(text_md)
    if args.record:
        record_section(args.record, "ablation", text_md)
        print(f"recorded in {args.record}")


if __name__ == "__main__":
    main()
