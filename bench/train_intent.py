"""Train the extraction-intent classifier (``content.extraction_intent``) on dev data only.

    python bench/train_intent.py [--data ../shared/data] [--out src/.../models/intent-v1.npz]
                                 [--sources permissive|all|NAME,NAME...]

Deterministic: the same data and seed give the same artifact, byte for byte.

By default only permissively licensed sources are trained on (``intent_sources.PERMISSIVE``:
Apache-2.0, MIT, CC BY 4.0), because the artifact ships in the repository and is derived
from its training texts. ``--sources all`` adds the CC BY-NC and unlicensed sources, for a
model of one's own; it must then be written somewhere else than the shipped artifact.

The labelled prompts come from ``intent_data`` (our wrapper generator around dev-split
texts; the phrase pools are in ``intent_phrases``). Features are exactly
``intent_model.featurize``'s; the binary head is a logistic regression (C chosen on a
validation slice of the dev texts, worded with held-out phrasings), the family head a
multinomial one on the folded buckets, and the threshold the lowest whose validation
false-positive rate is at most ``MAX_VAL_FPR``.

Evaluation runs on **test-split** sources only (``oasst`` and ``self-instruct`` are
test-only), all of them whatever ``--sources`` says, and again on the permissive ones alone,
with the shipped artifact read back through ``intent_model.read_model``: (a) our wrappers
with held-out phrasings, (b) the simulator's templates, never trained on. It is printed and
written next to the artifact as ``intent-v1.eval.json``. See ``docs/intent-model.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from distillwatch.bench import world
from distillwatch.bench.sources import KINDS, Conversation, DataError, find_data_dir, load_pools
from distillwatch.errors import DistillwatchError
from distillwatch.signals import intent_model as im
from intent_data import (
    FAMILIES,
    HOWTO,
    SIM_NEUTRAL,
    SIM_POSITIVE,
    Sample,
    Wrapper,
    build_set,
    in_validation,
    leak_check,
    sim_set,
    texts_of,
)
from intent_sources import CHOICES, LICENCES, PERMISSIVE, not_permissive, restrict, select

__all__ = [
    "HOWTO",
    "PERMISSIVE",
    "Sample",
    "Wrapper",
    "build_set",
    "leak_check",
    "main",
    "select",
    "train",
]


SEED = 20260301


C_GRID = (0.5, 2.0, 8.0)


MAX_VAL_FPR = 0.02  # the threshold: the lowest with at most this FPR on validation


# share of texts lengthened with pasted material (intent_data.paste), in train and validation
PASTE_SHARE = 0.2


def length_weights(
    lengths: npt.NDArray[np.int_], y: npt.NDArray[np.int_]
) -> npt.NDArray[np.float64]:
    """Sample weights giving both classes the same weight within every length band.

    A wrapper makes a prompt longer, so positives run longer than negatives; unweighted, the
    model would learn that long prompts are suspicious (and flag people's long prompts).
    """
    band = np.minimum((np.log2(np.maximum(lengths, 1)) * 3).astype(int), 40)
    w = np.zeros(len(y))
    for b in np.unique(band):
        sel = band == b
        npos, nneg = int((y[sel] == 1).sum()), int((y[sel] == 0).sum())
        if npos and nneg:
            w[sel & (y == 1)] = sel.sum() / 2 / npos
            w[sel & (y == 0)] = sel.sum() / 2 / nneg
        else:  # a band with one class only says nothing about intent: left out
            w[sel] = 0.0
    out: npt.NDArray[np.float64] = w * len(y) / w.sum()
    return out


# a scipy.sparse.csr_matrix (scipy ships no type information)
BinaryMatrix: TypeAlias = Any


def matrix(samples: Sequence[Sample], fold: bool = False) -> BinaryMatrix:
    """The samples' features exactly as ``intent_model.featurize`` computes them."""
    indptr = [0]
    chunks: list[npt.NDArray[np.intp]] = []
    values: list[npt.NDArray[np.float32]] = []
    for s in samples:
        idx, value = im.featurize(s.user, s.system)
        if fold:
            idx = idx >> (im.BITS - im.FAMILY_BITS)
        chunks.append(idx)
        values.append(np.full(idx.size, value, dtype=np.float32))
        indptr.append(indptr[-1] + idx.size)
    width = 2 ** (im.FAMILY_BITS if fold else im.BITS)
    m = sparse.csr_matrix(
        (np.concatenate(values), np.concatenate(chunks), np.array(indptr)),
        shape=(len(samples), width),
    )
    m.sum_duplicates()
    return m


def inverse_document_frequency(x: BinaryMatrix) -> npt.NDArray[np.float64]:
    """Smoothed IDF of every bucket: n-grams every prompt has (" th") weigh little.

    Training scales the features by it and the artifact carries ``coef * idf``, so inference
    pays nothing for it.
    """
    df = np.bincount(x.indices, minlength=x.shape[1])
    idf: npt.NDArray[np.float64] = np.log((1.0 + x.shape[0]) / (1.0 + df)) + 1.0
    return idf


def fit(
    x: BinaryMatrix, y: npt.NDArray[np.int_], w: npt.NDArray[np.float64], c: float
) -> LogisticRegression:
    model = LogisticRegression(C=c, max_iter=3000, tol=1e-6)
    return model.fit(x, y, sample_weight=w)


def scores(model: im.IntentModel, samples: Sequence[Sample]) -> npt.NDArray[np.float64]:
    return np.array([model.proba(s.user, s.system) for s in samples])


def summary(y: npt.NDArray[np.int_], p: npt.NDArray[np.float64], thr: float) -> dict[str, Any]:
    pred = p >= thr
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    out: dict[str, Any] = {"positives": pos, "negatives": neg}
    out["precision"] = round(tp / (tp + fp), 4) if tp + fp else None
    out["recall"] = round(tp / pos, 4) if pos else None
    out["fpr"] = round(fp / neg, 4) if neg else None
    out["auc"] = round(float(roc_auc_score(y, p)), 4) if pos and neg else None
    return out


def evaluate(samples: Sequence[Sample], p: npt.NDArray[np.float64], thr: float) -> dict[str, Any]:
    """Overall, per positive family (against every negative) and per negative kind."""
    y = np.array([s.label for s in samples])
    fam = np.array([s.family for s in samples])
    out: dict[str, Any] = {"overall": summary(y, p, thr), "family": {}, "negative_kind": {}}
    for f in sorted(set(fam[y == 1])):
        sel = (y == 0) | (fam == f)
        out["family"][f] = summary(y[sel], p[sel], thr)
    for k in sorted(set(fam[y == 0])):
        sel = fam == k
        out["negative_kind"][k] = {
            "n": int(sel.sum()),
            "fpr": round(float((p[sel] >= thr).mean()), 4),
        }
    return out


def per_source_fpr(
    samples: Sequence[Sample], p: npt.NDArray[np.float64], thr: float
) -> dict[str, Any]:
    src = np.array([s.source for s in samples])
    out = {"all": {"n": len(samples), "fpr": round(float((p >= thr).mean()), 4)}}
    for s in sorted(set(src)):
        sel = src == s
        out[s] = {"n": int(sel.sum()), "fpr": round(float((p[sel] >= thr).mean()), 4)}
    return out


def per_length_fpr(
    samples: Sequence[Sample], p: npt.NDArray[np.float64], thr: float
) -> dict[str, Any]:
    """False-positive rate by prompt length: long prompts must not look suspicious."""
    lengths = np.array([len(s.user) for s in samples])
    out = {}
    for lo, hi in ((0, 100), (100, 300), (300, 1000), (1000, 2500), (2500, 10**9)):
        sel = (lengths >= lo) & (lengths < hi)
        name = f"{lo}-{hi} chars" if hi < 10**9 else f"{lo}+ chars"
        out[name] = {"n": int(sel.sum()), "fpr": round(float((p[sel] >= thr).mean()), 4)}
    return out


def per_template(
    samples: Sequence[Sample], p: npt.NDArray[np.float64], thr: float
) -> list[dict[str, Any]]:
    """Detection rate of every simulator template (first 60 characters name it)."""
    rows: dict[str, list[float]] = {}
    label: dict[str, int] = {}
    for s, q in zip(samples, p, strict=True):
        for name in (*SIM_POSITIVE, *SIM_NEUTRAL):
            for tpl in getattr(world, name, ()):
                head = tpl.split("{q}")[0].strip() or tpl.split("{q}")[-1].strip()
                if head and head in s.user:
                    key = f"{name}: {head[:60]}"
                    rows.setdefault(key, []).append(q)
                    label[key] = s.label
    return [
        {
            "template": k,
            "label": label[k],
            "n": len(v),
            "flagged": round(float(np.mean(np.array(v) >= thr)), 4),
        }
        for k, v in sorted(rows.items())
    ]


def pick_threshold(y: npt.NDArray[np.int_], p: npt.NDArray[np.float64], max_fpr: float) -> float:
    """The lowest threshold (on a 0.01 grid) whose false-positive rate is at most ``max_fpr``."""
    for thr in np.arange(0.30, 0.96, 0.01):
        if float((p[y == 0] >= thr).mean()) <= max_fpr:
            return round(float(thr), 2)
    return 0.95


def _weighted_matrix(
    samples: Sequence[Sample], idf: npt.NDArray[np.float64], fold: bool = False
) -> BinaryMatrix:
    return matrix(samples, fold) @ sparse.diags(idf)


def fit_intent_head(
    train_set: Sequence[Sample], val_set: Sequence[Sample]
) -> tuple[LogisticRegression, npt.NDArray[np.float64], float]:
    """The binary head (C by validation AUC) and the IDF it was trained with."""
    y = np.array([s.label for s in train_set])
    x = matrix(train_set)
    w = length_weights(np.array([len(im.prompt_input(s.user, s.system)) for s in train_set]), y)
    idf = inverse_document_frequency(x)
    x = x @ sparse.diags(idf)
    yv = np.array([s.label for s in val_set])
    xv = _weighted_matrix(val_set, idf)
    print(f"train: {len(train_set)} prompts ({int(y.sum())} positive), {x.nnz} non-zeros")
    print(f"validation: {len(val_set)} prompts ({int(yv.sum())} positive)")
    best: tuple[float, float, LogisticRegression] | None = None
    for c in C_GRID:
        lr = fit(x, y, w, c)
        auc = float(roc_auc_score(yv, lr.decision_function(xv)))
        print(f"  C={c}: validation AUC {auc:.4f}")
        if best is None or auc > best[0] + 1e-4:
            best = (auc, c, lr)
    assert best is not None
    return best[2], idf, best[1]


def fit_family_head(
    train_set: Sequence[Sample], val_set: Sequence[Sample]
) -> tuple[LogisticRegression, npt.NDArray[np.float64]]:
    """Which family a flagged prompt belongs to (it only words the explanation)."""
    pos = [s for s in train_set if s.label == 1]
    xf = matrix(pos, fold=True)
    idf = inverse_document_frequency(xf)
    xf = xf @ sparse.diags(idf)
    y = np.array([FAMILIES.index(s.family) for s in pos])
    vpos = [s for s in val_set if s.label == 1]
    xv = _weighted_matrix(vpos, idf, fold=True)
    yv = np.array([FAMILIES.index(s.family) for s in vpos])
    best: tuple[float, LogisticRegression] | None = None
    for c in C_GRID:
        head = LogisticRegression(C=c, max_iter=3000, tol=1e-6).fit(xf, y)
        acc = float((head.predict(xv) == yv).mean())
        print(f"  family head C={c}: validation accuracy {acc:.4f}")
        if best is None or acc > best[0] + 1e-4:
            best = (acc, head)
    assert best is not None
    return best[1], idf


def train(
    data_dir: Path | None,
    out: Path,
    seed: int,
    sources: frozenset[str] = PERMISSIVE,
    paste_share: float = PASTE_SHARE,
) -> dict[str, Any]:
    """Train on the dev split of ``sources``, write the artifact to ``out``, return its report.

    The evaluation uses every test-split source, and the permissive ones alone.
    """
    dev = restrict(load_pools(data_dir, "dev"), sources)
    kinds = {KINDS.get(s) for s in dev}
    if not {"A", "B"} <= kinds:
        raise DataError(
            f"training needs a kind-A and a kind-B source with dev texts; got {sorted(dev)}"
        )
    train_set = build_set(
        dev,
        rng=random.Random(f"{seed}/train"),
        heldout=False,
        keep=lambda t: not in_validation(t),
        n_pos=20000,
        n_generated=4000,
        howto_repeats=2,
        paste_share=paste_share,
    )
    val_set = build_set(
        dev,
        rng=random.Random(f"{seed}/val"),
        heldout=True,
        keep=in_validation,
        n_pos=3000,
        n_generated=500,
        paste_share=paste_share,
    )
    lr, idf, c = fit_intent_head(train_set, val_set)
    fam, fidf = fit_family_head(train_set, val_set)
    draft = im.IntentModel(
        weights=(lr.coef_[0] * idf).astype(np.float32),  # the IDF folded into the weights
        bias=float(lr.intercept_[0]),
        family_weights=(fam.coef_ * fidf).astype(np.float32),
        family_bias=fam.intercept_.astype(np.float32),
        threshold=0.5,
        meta={},
    )
    yv = np.array([s.label for s in val_set])
    threshold = pick_threshold(yv, scores(draft, val_set), max_fpr=MAX_VAL_FPR)
    used = sorted(dev)
    meta = {
        "trained_on": f"dev split only, sources: {', '.join(used)}",
        "train_sources": {s: LICENCES.get(s, "unknown") for s in used},
        "train_prompts": len(train_set),
        "train_positives": sum(s.label for s in train_set),
        "c": c,
        "seed": seed,
        "paste_share": paste_share,
        "edge_chars": im.EDGE_CHARS,
        "system_chars": im.SYSTEM_CHARS,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save_model(out, dataclasses.replace(draft, threshold=threshold, meta=meta))
    model = im.read_model(out)  # evaluate what ships: float16 weights, read back
    report: dict[str, Any] = {"artifact_bytes": out.stat().st_size, "threshold": threshold, "c": c}
    report["train_sources"] = meta["train_sources"]
    report["validation"] = evaluate(val_set, scores(model, val_set), threshold)
    left_out = {s: c for s, c in load_pools(data_dir, "dev").items() if s not in sources}
    plain = [Sample(t, None, 0, "plain", s) for s, t in texts_of(left_out, "A")]
    if plain:  # dev prompts of sources not trained on: a dev check of people's long prompts
        p_plain = scores(model, plain)
        report["dev_left_out_kind_a_fpr"] = per_source_fpr(plain, p_plain, threshold)
        report["dev_left_out_kind_a_fpr_by_length"] = per_length_fpr(plain, p_plain, threshold)
    test = load_pools(data_dir, "test")
    report.update(evaluate_on_test(model, test, seed))
    permissive = evaluate_on_test(model, restrict(test, PERMISSIVE), seed)
    permissive.pop("leaked_6grams")
    report["test_permissive"] = {"sources": sorted(restrict(test, PERMISSIVE)), **permissive}
    return report


def evaluate_on_test(
    model: im.IntentModel, test: dict[str, list[Conversation]], seed: int
) -> dict[str, Any]:
    """(a) Our wrappers, held-out phrasings, on test-split texts; (b) the simulator's templates.

    Every kind-A test prompt as sent is a negative in both.
    """
    threshold = model.threshold
    report: dict[str, Any] = {}
    ours = build_set(
        test, rng=random.Random(f"{seed}/test"), heldout=True, n_pos=5000, n_generated=800
    )
    ours = [s for s in ours if s.family != "plain"]
    sim = sim_set(test, random.Random(f"{seed}/sim"), per_pool=600)
    plain = [Sample(t, None, 0, "plain", s) for s, t in texts_of(test, "A")]
    p_ours, p_sim, p_plain = scores(model, ours), scores(model, sim), scores(model, plain)
    report["test_ours"] = evaluate([*ours, *plain], np.concatenate([p_ours, p_plain]), threshold)
    report["test_sim"] = evaluate([*sim, *plain], np.concatenate([p_sim, p_plain]), threshold)
    report["test_sim_templates"] = per_template(sim, p_sim, threshold)
    report["test_plain_kind_a_fpr"] = per_source_fpr(plain, p_plain, threshold)
    report["test_plain_kind_a_fpr_by_length"] = per_length_fpr(plain, p_plain, threshold)
    accuracy, confusion = _family_confusion(model, [s for s in ours if s.label == 1])
    report["test_ours_family_head_accuracy"] = accuracy
    report["test_ours_family_confusion"] = confusion
    sim_pos = [(s, q) for s, q in zip(sim, p_sim, strict=True) if s.label == 1]
    report["test_sim_recall_by_source"] = {
        src: round(float(np.mean([q >= threshold for s, q in sim_pos if s.source == src])), 4)
        for src in sorted({s.source for s, _ in sim_pos})
    }
    report["leaked_6grams"] = leak_check()
    return report


def _family_confusion(
    model: im.IntentModel, positives: Sequence[Sample]
) -> tuple[float, dict[str, dict[str, int]]]:
    """Accuracy of the family head, and true family -> predicted family counts."""
    confusion = {f: dict.fromkeys(FAMILIES, 0) for f in FAMILIES}
    for s in positives:
        idx, value = im.featurize(s.user, s.system)
        confusion[s.family][FAMILIES[model.family_of(idx, value)]] += 1
    hits = sum(confusion[f][f] for f in FAMILIES)
    return round(hits / max(1, len(positives)), 4), confusion


def _fmt(d: dict[str, Any]) -> str:
    parts = []
    for key in ("precision", "recall", "fpr", "auc"):
        v = d.get(key)
        parts.append(f"{key} {'-' if v is None else f'{v:.3f}'}")
    return f"{', '.join(parts)} (pos {d['positives']}, neg {d['negatives']})"


def print_report(r: dict[str, Any]) -> None:
    print(f"\nartifact: {r['artifact_bytes']:,} bytes; threshold {r['threshold']}; C {r['c']}")
    print("trained on (dev split):", ", ".join(f"{s} ({v})" for s, v in r["train_sources"].items()))
    if "dev_left_out_kind_a_fpr" in r:
        print("\ndev kind-A prompts of sources not trained on, flagged:")
        for s, d in r["dev_left_out_kind_a_fpr"].items():
            print(f"  {s:12s} n={d['n']:5d}  {d['fpr']:.4f}")
        for s, d in r["dev_left_out_kind_a_fpr_by_length"].items():
            print(f"  {s:16s} n={d['n']:5d}  {d['fpr']:.4f}")
    _print_tests(r)
    p = r["test_permissive"]
    print(f"\n=== the same on permissively licensed test sources alone: {', '.join(p['sources'])}")
    _print_tests(p)
    print(f"6-grams shared with the simulator's templates: {r['leaked_6grams']}")


def _print_tests(r: dict[str, Any]) -> None:
    for key, title in (
        ("validation", "dev validation (held-out phrasings, dev texts never trained on)"),
        ("test_ours", "test (a): our wrappers, held-out phrasings, test-split texts"),
        ("test_sim", "test (b): the simulator's templates (never trained on), test-split texts"),
    ):
        if key not in r:
            continue
        print(f"\n{title}\n  overall: {_fmt(r[key]['overall'])}")
        for f, d in r[key]["family"].items():
            print(f"  {f:10s} {_fmt(d)}")
        for k, d in r[key]["negative_kind"].items():
            print(f"  negatives {k:24s} n={d['n']:5d}  flagged {d['fpr']:.3f}")
    print("\nsimulator templates (share flagged):")
    for row in r["test_sim_templates"]:
        sign = "+" if row["label"] else "-"
        name = row["template"].replace("\n", " ")
        print(f"  [{sign}] {row['flagged']:.3f}  n={row['n']:4d}  {name}")
    print("\nplain test-split kind-A prompts, flagged:")
    for s, d in r["test_plain_kind_a_fpr"].items():
        print(f"  {s:12s} n={d['n']:5d}  {d['fpr']:.4f}")
    print("\nplain test-split kind-A prompts by length, flagged:")
    for s, d in r["test_plain_kind_a_fpr_by_length"].items():
        print(f"  {s:16s} n={d['n']:5d}  {d['fpr']:.4f}")
    print("\nsimulator templates, recall by test source:", r["test_sim_recall_by_source"])
    print(f"\nfamily head accuracy on test (a) positives: {r['test_ours_family_head_accuracy']}")
    for f, row in r["test_ours_family_confusion"].items():
        print(f"  {f:10s} -> " + ", ".join(f"{k} {v}" for k, v in row.items()))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="shared/data (default: found)")
    ap.add_argument("--out", type=Path, default=im.DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument(
        "--sources",
        default="permissive",
        help=f"{' or '.join(CHOICES)} or comma-separated source names (default: permissive,"
        " the licences the shipped model allows)",
    )
    ap.add_argument(
        "--paste-share",
        type=float,
        default=PASTE_SHARE,
        help=f"share of texts lengthened with pasted material (default {PASTE_SHARE}; 0: none)",
    )
    args = ap.parse_args(argv)
    if not 0.0 <= args.paste_share <= 1.0:
        ap.error(f"--paste-share must be between 0 and 1 (got {args.paste_share})")
    try:
        sources = select(args.sources)
    except ValueError as exc:
        ap.error(f"--sources: {exc}")
    restricted = not_permissive(sources)
    if restricted and args.out.resolve() == im.DEFAULT_MODEL.resolve():
        ap.error(
            f"--sources {args.sources} includes sources that are not permissively licensed"
            f" ({', '.join(restricted)}): the shipped model must not be derived from them;"
            " pass --out with a path of your own"
        )
    data = args.data or find_data_dir()
    if data is None:
        ap.error("shared/data not found: pass --data")
    t0 = time.perf_counter()
    try:
        report = train(data.resolve(), args.out, args.seed, sources, args.paste_share)
    except DistillwatchError as exc:  # a missing or malformed data source
        ap.error(str(exc))
    print_report(report)
    print(f"\ntrained and evaluated in {time.perf_counter() - t0:.0f} s")
    args.out.with_suffix(".eval.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
