"""Campaign attribution ablation: a generated log replayed without linking, with linking, and
with linking plus the policy's ``campaign_min_exchanges`` (accounts in a detected campaign
may be acted on before their own ``min_exchanges``).

    distillwatch bench detect --scenario default --split dev --systems distillwatch --out B
    python bench/campaign_ablation.py B/log-default-dev-seed7-x1 --campaign-min 3

The benchmark's campaigns start all their accounts at once; ``--late-share`` makes that share
of every multi-account campaign's accounts (picked by a hash of the account id) start
``--late-after-h`` hours into the log instead — their earlier exchanges are dropped — so
the log has new accounts joining already-detected campaigns (``attribution.late_joiners``).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from distillwatch.attribute.factory import engine_factory
from distillwatch.bench.metrics import activity, evaluate
from distillwatch.detect import replay
from distillwatch.log import read_accounts, read_exchanges, read_labels
from distillwatch.policy import load_policy, policy_from_mapping
from distillwatch.records import Exchange


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="a generated log folder (bench detect --out …)")
    parser.add_argument("--campaign-min", type=int, default=3)
    parser.add_argument("--late-share", type=float, default=0.0)
    parser.add_argument("--late-after-h", type=float, default=24.0)
    args = parser.parse_args()
    folder: Path = args.log
    accounts = read_accounts(folder / "accounts.jsonl")
    labels = read_labels(folder / "labels.jsonl")

    late = {
        a
        for a, lb in labels.items()
        if lb.label == "attack"
        and lb.campaign_id is not None
        and not lb.campaign_id.startswith(("camp_solo_", "camp_resale_"))
        and int(hashlib.sha256(a.encode()).hexdigest()[:8], 16) < args.late_share * 2**32
    }
    start: list[float] = []

    def log() -> Iterator[list[Exchange]]:
        for batch in read_exchanges(folder / "exchanges.jsonl.gz"):
            if not start and batch:
                start.append(batch[0].ts.timestamp())
            cut = start[0] + args.late_after_h * 3600.0 if start else 0.0
            yield [e for e in batch if e.account_id not in late or e.ts.timestamp() >= cut]

    act = activity(log())
    shipped = load_policy().model.model_dump(mode="python")
    base = policy_from_mapping({**shipped, "campaign_min_exchanges": None})
    early = policy_from_mapping({**shipped, "campaign_min_exchanges": args.campaign_min})
    rows = []
    for kind, policy in (("off", base), ("linked", base), ("early", early)):
        t0 = time.perf_counter()
        result = replay(log, engine_factory(policy, accounts, campaigns=kind != "off"))
        seconds = time.perf_counter() - t0
        m = evaluate(result.verdicts, labels, act, system=kind)
        rows.append((kind, seconds, m))
    print(f"late joiners: {len(late)} accounts start {args.late_after_h:g} h into the log")
    print()
    print(
        "| run | seconds | FPR | recall | leakage | median exch. before action | ARI | purity "
        "| campaigns found | late joiners: n, median, p90 exch. before action |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, seconds, m in rows:
        a = m.attribution
        assert a is not None
        lj = a.late_joiners
        print(
            f"| {kind} | {seconds:.1f} | {m.fpr:.4f} | {m.recall:.4f} | {m.leakage:.4f} | "
            f"{m.exchanges_to_action.median} | {a.ari} | {a.purity} | "
            f"{a.campaigns_found}/{a.campaigns_multi} | {lj.n}, {lj.median}, {lj.p90} |"
        )
    print()
    print("| profile | " + " | ".join(f"{k} acted / leakage / median" for k, _, _ in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    names = [p.profile for p in rows[0][2].profiles]
    for name in names:
        cells = []
        for _, _, m in rows:
            p = next(p for p in m.profiles if p.profile == name)
            med = p.exchanges_to_action.median if p.exchanges_to_action else None
            leak = f"{p.leakage:.3f}" if p.leakage is not None else "–"
            cells.append(f"{p.acted}/{p.accounts} / {leak} / {med}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
