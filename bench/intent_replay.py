"""Replay an exchange log through ``content.extraction_intent`` alone: its cost and its accounts.

    python bench/intent_replay.py cost LOG            # µs per prompt and per exchange
    python bench/intent_replay.py accounts LOG_DIR    # per-profile figures (needs labels)
    python bench/intent_replay.py accounts LOG_DIR --model other.npz  # another artifact

``LOG`` is an ``exchanges.jsonl(.gz)``, ``LOG_DIR`` a folder written by ``distillwatch
simulate`` or ``distillwatch bench detect`` (``exchanges.jsonl.gz`` and ``labels.jsonl``).
Exchanges go through the signal as the engine sends them: update, then evaluate.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from distillwatch.records import Exchange
from distillwatch.signals import intent_model as im
from distillwatch.signals.base import EvalContext
from distillwatch.signals.intent import ExtractionIntent, system_text
from distillwatch.signals.text import last_user_text


def read_log(log: Path, limit: int | None = None) -> Iterator[Exchange]:
    decoder = msgspec.json.Decoder(Exchange)
    with gzip.open(log, "rb") if log.suffix == ".gz" else log.open("rb") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                return
            yield decoder.decode(line)


def _best_us(
    fn: Callable[[str, str | None], object], texts: Sequence[tuple[str, str | None]]
) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for user, system in texts:
            fn(user, system)
        best = min(best, (time.perf_counter() - t0) / len(texts))
    return round(best * 1e6, 1)


def measure_cost(log: Path, limit: int = 200_000, prompts: int = 5000) -> dict[str, float]:
    """µs per prompt (best of 5 over ``prompts`` prompts) and per exchange through the signal."""
    exchanges = list(read_log(log, limit))
    if not exchanges:
        raise ValueError("no exchanges")
    texts = [
        (t, system_text(e.request))
        for e in exchanges
        if e.request and (t := last_user_text(e.request))
    ][:prompts]
    model = im.load_model()

    def replay(sig: ExtractionIntent | None) -> tuple[float, int]:
        states: dict[str, Any] = {}
        t0 = time.perf_counter()
        for n, e in enumerate(exchanges, start=1):
            st: Any = states.get(e.account_id)
            if st is None:
                st = states[e.account_id] = sig.new_state() if sig else {}
            t = e.ts.timestamp()
            ctx = EvalContext(now=t, account=None, tier="paid", exchanges=n)
            if sig is not None:
                sig.update(st, e, t)
                sig.evaluate(st, ctx)
        classified = sum(st.sampled for st in states.values()) if sig else 0
        return time.perf_counter() - t0, classified

    loop, _ = replay(None)  # the harness alone, subtracted
    total, classified = replay(ExtractionIntent())
    return {
        "exchanges": len(exchanges),
        "prompts_timed": len(texts),
        "median_prompt_chars": statistics.median(len(u) for u, _ in texts) if texts else 0,
        "us_featurize": _best_us(im.featurize, texts) if texts else 0.0,
        "us_featurize_and_logit": _best_us(lambda u, s: model.logit(u, s), texts) if texts else 0.0,
        "us_classify_with_family": _best_us(model.classify, texts) if texts else 0.0,
        "classified_share": round(classified / len(exchanges), 4),
        "us_per_exchange": round((total - loop) / len(exchanges) * 1e6, 2),
    }


def account_table(log_dir: Path, model: im.IntentModel | None = None) -> dict[str, Any]:
    """Per-profile share and evidence at the end of the log, and the account-level ROC AUC.

    ``model``: the classifier to replay (default: the shipped artifact).
    """
    labels: dict[str, tuple[str, str]] = {}
    for line in (log_dir / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        labels[row["account_id"]] = (row["label"], row["profile"])
    sig = ExtractionIntent(model=model)
    states: dict[str, Any] = {}
    for e in read_log(log_dir / "exchanges.jsonl.gz"):
        st = states.get(e.account_id)
        if st is None:
            st = states[e.account_id] = sig.new_state()
        sig.update(st, e, e.ts.timestamp())
    rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
    scored: list[tuple[int, float]] = []
    for account, st in states.items():
        v = sig.evaluate(st, EvalContext(now=0.0, account=None, tier="paid", exchanges=st.seen))
        if not v.available or account not in labels or v.value is None:
            continue
        rows.setdefault(labels[account], []).append((v.value, v.evidence))
        scored.append((labels[account][0] != "legit", v.evidence))
    table = [
        {
            "label": label,
            "profile": profile,
            "accounts": len(r),
            "median_share": round(statistics.median(s for s, _ in r), 3),
            "evidence_over_1": round(sum(e > 1 for _, e in r) / len(r), 3),
            "evidence_over_2": round(sum(e > 2 for _, e in r) / len(r), 3),
        }
        for (label, profile), r in sorted(rows.items())
    ]
    return {"profiles": table, "roc_auc": round(_auc(scored), 4)}


def _auc(scored: Sequence[tuple[int, float]]) -> float:
    """Probability that an attack account's evidence beats a legitimate one's (ties: half)."""
    pos = sorted(e for y, e in scored if y)
    neg = sorted(e for y, e in scored if not y)
    if not pos or not neg:
        return float("nan")
    wins, lo, hi = 0.0, 0, 0
    for e in pos:  # neg[:lo] < e, neg[lo:hi] == e
        while lo < len(neg) and neg[lo] < e:
            lo += 1
        hi = max(hi, lo)
        while hi < len(neg) and neg[hi] == e:
            hi += 1
        wins += lo + (hi - lo) / 2
    return wins / (len(pos) * len(neg))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    cost = sub.add_parser("cost", help="µs per prompt and per exchange")
    cost.add_argument("log", type=Path)
    cost.add_argument("--limit", type=int, default=200_000)
    accounts = sub.add_parser("accounts", help="per-profile figures of a labelled log")
    accounts.add_argument("log_dir", type=Path)
    accounts.add_argument("--model", type=Path, default=None, help="an intent-v1 artifact")
    args = ap.parse_args(argv)
    try:
        if args.what == "cost":
            result: dict[str, Any] = measure_cost(args.log, args.limit)
        else:
            model = im.read_model(args.model) if args.model else None
            result = account_table(args.log_dir, model)
    except (OSError, ValueError, KeyError) as exc:  # msgspec.DecodeError is a ValueError
        ap.error(f"cannot read the log or the model ({type(exc).__name__}: {exc})")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
