"""``bench calibrate``: fit the score combiner on dev-split traffic (never the test split).

1. generate each scenario's traffic from the **dev** split;
2. replay it through the engine and record every account's signal evidence at snapshots —
   after its 10th, 20th, 40th, … exchange and at the end of the log — because the policy
   acts on the score all along an account's life, not only at the end; again with prompt
   text removed, for the metadata-only model; and both again without the accounts file
   (``KINDS``: the spec makes it optional, and an operator without one must still be
   protected);
3. fit a logistic model per evidence set with every weight ≥ 0 (monotone: evidence of
   distillation never lowers the score), L2 strength chosen by account-grouped
   cross-validation, each account weighing 1 in total (its snapshots share it) and both
   classes weighing the same; the intercept is then moved to the stated prior;
4. choose the operating point (the prior) on dev by one rule (``choose_prior``), shared by
   the two models with sign-up metadata (the file's ``prior``) and, separately, by the two
   without it (each model's ``prior``): a model with and without prompt text scores the
   same accounts, so they share a point; sign-up metadata is there for a whole log or not;
5. write ``combiner.json`` (what ``detect.scoring.LogOddsScorer.load`` reads) with what it
   was fitted on and its cross-validated figures.

Needs the ``bench`` extra (SciPy).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from distillwatch.attribute.factory import engine_factory
from distillwatch.bench.run import BenchConfig, _generate, _log, _strip
from distillwatch.detect import Engine, replay
from distillwatch.detect.scoring import LogOddsScorer, logit
from distillwatch.errors import ConfigError
from distillwatch.log import read_accounts, read_labels
from distillwatch.policy import Policy, load_policy
from distillwatch.records import Exchange
from distillwatch.signals import create_signals

KINDS = ("full", "metadata", "full-noaccounts", "metadata-noaccounts")
"""The evidence sets a model is fitted for: prompt text or not × accounts file or not."""
SNAPSHOTS = frozenset(10 * 2**k for k in range(12))
"""Exchange counts at which an account's evidence is recorded (10, 20, 40, …)."""
L2_GRID = (0.01, 0.1, 1.0, 10.0)
FOLDS = 4
Progress = Callable[[str], None]
FloatArray = npt.NDArray[np.float64]


@dataclass
class Snapshots:
    """Evidence rows: ``account[i]`` had ``evidence[i]`` (signal id → log-odds) at a point."""

    account: list[str] = field(default_factory=list)
    evidence: list[dict[str, float]] = field(default_factory=list)

    def add(self, account_id: str, values: Iterable[Any]) -> None:
        self.account.append(account_id)
        self.evidence.append({v.signal_id: v.evidence for v in values if v.available})


class SnapshotEngine(Engine):
    """The engine, recording each account's evidence at ``SNAPSHOTS`` and at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snapshots = Snapshots()

    def observe(self, exchange: Exchange) -> Any:
        decision = super().observe(exchange)
        st = self.states[exchange.account_id]
        if st.exchanges in SNAPSHOTS:
            self.snapshots.add(st.account_id, self.score(st, exchange.ts.timestamp()).signals)
        return decision

    def finish(self) -> Snapshots:
        now = self.last_t or 0.0
        for st in self.states.values():
            if st.exchanges:
                self.snapshots.add(st.account_id, self.score(st, now).signals)
        return self.snapshots


class MarginEngine(Engine):
    """The engine with a fitted prior-free scorer, recording for every account the largest
    margin ``z − logit(throttle threshold of its tier)`` over its decision points (those
    past its tier's ``min_exchanges``): with prior π it is acted on iff
    ``margin + logit(π) ≥ 0`` — one replay gives the whole operating curve."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.margin: dict[str, float] = {}

    def decide(self, st: Any, now: float) -> Any:
        if self.policy.decide(1.0, tier=st.tier, exchanges=st.exchanges)[0].enforces:
            values = self.score(st, now).signals
            z = self.scorer.model_for(values).z(values)
            assert isinstance(self.policy, Policy)
            m = z - logit(self.policy.thresholds(st.tier)["throttle"])
            if m > self.margin.get(st.account_id, -math.inf):
                self.margin[st.account_id] = m
        return super().decide(st, now)


PRIOR_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)
"""Intercepts tried, as priors. The prior is the operating point (how much evidence acting
takes), chosen on dev; it is not a measurement of how many accounts distil."""


def operating_curve(
    margins: Sequence[dict[str, float]], labels: Sequence[dict[str, bool]]
) -> list[dict[str, float]]:
    """FPR and recall over ``PRIOR_GRID`` from per-account margins (accounts never past
    ``min_exchanges`` count as not acted on)."""
    legit = [m.get(a, -math.inf) for m, lab in zip(margins, labels, strict=True)
             for a, bad in lab.items() if not bad]  # fmt: skip
    attack = [m.get(a, -math.inf) for m, lab in zip(margins, labels, strict=True)
              for a, bad in lab.items() if bad]  # fmt: skip
    out = []
    for prior in PRIOR_GRID:
        cut = -logit(prior)
        out.append({
            "prior": prior,
            "fpr": sum(x >= cut for x in legit) / max(1, len(legit)),
            "recall": sum(x >= cut for x in attack) / max(1, len(attack)),
        })  # fmt: skip
    return out


@dataclass
class Design:
    """A design matrix over ``features`` with labels and per-row weights."""

    features: list[str]
    x: FloatArray
    y: FloatArray
    weight: FloatArray
    group: npt.NDArray[np.int64]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, x=self.x, y=self.y, weight=self.weight, group=self.group,
            features=np.asarray(self.features),
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Design:
        with np.load(path, allow_pickle=False) as z:
            return cls([str(f) for f in z["features"]], z["x"], z["y"], z["weight"], z["group"])

    def without(self, drop: Iterable[str]) -> Design:
        """The same rows without the columns of the signals in ``drop``."""
        gone = set(drop)
        keep = [i for i, f in enumerate(self.features) if f not in gone]
        return Design([self.features[i] for i in keep], self.x[:, keep], self.y, self.weight,
                      self.group)  # fmt: skip


def design(
    snapshots: Sequence[Snapshots],
    labels: Sequence[dict[str, bool]],
    cohorts: Sequence[dict[str, str]] | None = None,
) -> Design:
    """Rows of every labelled snapshot, weighted so that no one population dominates.

    An account's rows share its weight. ``cohorts`` name each account's population (an
    attack campaign, a legitimate profile): a cohort of *n* accounts weighs ``√n`` in all,
    so 300 hydra accounts cannot drown one scraper and 3,000 chat users cannot drown a
    dozen researchers, yet a large cohort still counts for more. Each class totals the
    same weight.
    """
    features = sorted({k for s in snapshots for row in s.evidence for k in row})
    col = {f: i for i, f in enumerate(features)}
    rows: list[list[float]] = []
    ys: list[float] = []
    groups: list[int] = []
    group_ids: dict[tuple[int, str], int] = {}
    cohort_of: dict[int, tuple[int, str]] = {}
    for i, (snap, lab) in enumerate(zip(snapshots, labels, strict=True)):
        for account, ev in zip(snap.account, snap.evidence, strict=True):
            if account not in lab:
                continue
            row = [0.0] * len(features)
            for k, v in ev.items():
                row[col[k]] = v
            rows.append(row)
            ys.append(1.0 if lab[account] else 0.0)
            gid = group_ids.setdefault((i, account), len(group_ids))
            groups.append(gid)
            cohort_of[gid] = (i, cohorts[i].get(account, account) if cohorts else account)
    if not rows:
        raise ConfigError("no labelled snapshots to fit on")
    y = np.asarray(ys)
    g = np.asarray(groups, dtype=np.int64)
    per_account = np.bincount(g)
    size: dict[tuple[int, str], int] = {}
    for c in cohort_of.values():
        size[c] = size.get(c, 0) + 1
    account_weight = np.array([size[cohort_of[a]] ** -0.5 for a in range(len(per_account))])
    w = account_weight[g] / per_account[g]
    for cls in (0.0, 1.0):
        mask = y == cls
        total = w[mask].sum()
        if total == 0:
            raise ConfigError("the dev traffic needs both attack and legitimate accounts")
        w[mask] *= 0.5 * len(per_account) / total
    return Design(features, np.asarray(rows), y, w, g)


def fit_logistic(
    x: FloatArray, y: FloatArray, w: FloatArray, l2: float
) -> tuple[float, FloatArray]:
    """Weighted logistic regression with non-negative coefficients (L-BFGS-B)."""
    from scipy.optimize import minimize

    k = x.shape[1]
    scale = w.sum()

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        b, coef = theta[0], theta[1:]
        z = b + x @ coef
        # log(1 + e^z) - y z, stably
        nll = np.logaddexp(0.0, z) - y * z
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        r = w * (p - y)
        value = float(w @ nll) / scale + 0.5 * l2 * float(coef @ coef)
        grad = np.concatenate(([r.sum()], x.T @ r)) / scale
        grad[1:] += l2 * coef
        return value, grad

    bounds = [(None, None)] + [(0.0, None)] * k
    res = minimize(loss, np.zeros(k + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return float(res.x[0]), np.asarray(res.x[1:])


def _log_loss(x: FloatArray, y: FloatArray, w: FloatArray, b: float, coef: FloatArray) -> float:
    z = b + x @ coef
    return float(w @ (np.logaddexp(0.0, z) - y * z) / w.sum())


def choose_l2(d: Design) -> tuple[float, dict[str, float], FloatArray]:
    """The L2 strength with the lowest account-grouped cross-validated log-loss, the
    log-loss of every strength tried, and the chosen one's held-out log-odds per row."""
    fold = d.group % FOLDS
    scores: dict[str, float] = {}
    held: dict[float, FloatArray] = {}
    for l2 in L2_GRID:
        total = 0.0
        z = np.zeros(len(d.y))
        for k in range(FOLDS):
            tr, te = fold != k, fold == k
            b, coef = fit_logistic(d.x[tr], d.y[tr], d.weight[tr], l2)
            z[te] = b + d.x[te] @ coef
            total += _log_loss(d.x[te], d.y[te], d.weight[te], b, coef)
        scores[str(l2)] = round(total / FOLDS, 5)
        held[l2] = z
    best = min(L2_GRID, key=lambda v: scores[str(v)])
    return best, scores, held[best]


def _auc(y: FloatArray, s: FloatArray, w: FloatArray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s, sample_weight=w))


def fit_model(d: Design, text_signals: frozenset[str], metadata: bool) -> dict[str, Any]:
    """Fit one model (``full`` or ``metadata``) and describe it."""
    l2, cv, held = choose_l2(d)
    b, coef = fit_logistic(d.x, d.y, d.weight, l2)
    weights = {
        f: round(float(c), 4)
        for f, c in zip(d.features, coef, strict=True)
        if not (metadata and f in text_signals)
    }
    return {
        "intercept": round(b, 4),
        "fitted_prior_logit": 0.0,  # both classes weighed the same: prior 1/2
        "default_weight": 1.0,
        "weights": weights,
        "l2": l2,
        "cv_log_loss": cv,
        "cv_auc_snapshots": round(_auc(d.y, held, d.weight), 4),
        "rows": len(d.y),
        "accounts": int(d.group.max()) + 1,
    }


@dataclass
class CalibrateConfig:
    scenarios: tuple[str, ...]
    out: Path
    write: Path
    seed: int = 11
    scale: float = 1.0
    prior: float | None = None
    """Share of active accounts assumed to distil; None: chosen on dev (``max_fpr``)."""
    max_fpr: float = 0.0005
    campaigns: bool = True
    """Fit with campaign attribution on, so its evidence gets a weight like a signal's."""
    data_dir: Path | None = None
    use_shared_data: bool = True


@dataclass
class DevLog:
    """One scenario's dev traffic: its log (as a re-openable source), accounts and labels."""

    @staticmethod
    def kind(name: str) -> tuple[bool, bool]:
        """(metadata only, without accounts) of an evidence set in ``KINDS``."""
        return name.startswith("metadata"), name.endswith("-noaccounts")

    name: str
    log: Callable[[], Iterable[list[Exchange]]]
    accounts: dict[str, Any]
    labels: dict[str, bool]
    cohorts: dict[str, str]
    """Account → its population: attack campaign id, or legitimate profile."""

    def source(self, metadata_only: bool) -> Callable[[], Iterable[list[Exchange]]]:
        log = self.log
        return (lambda: _strip(log())) if metadata_only else log

    def accounts_for(self, kind: str) -> dict[str, Any]:
        """The accounts table the ``kind`` replay sees (none for ``-noaccounts``)."""
        return {} if self.kind(kind)[1] else self.accounts


def generate_dev(cfg: CalibrateConfig, say: Progress) -> list[DevLog]:
    out = []
    for name in cfg.scenarios:
        bc = BenchConfig(
            scenario=name, out=cfg.out, split="dev", seed=cfg.seed, scale=cfg.scale,
            data_dir=cfg.data_dir, use_shared_data=cfg.use_shared_data,
        )  # fmt: skip
        gen = _generate(bc, "dev", cfg.seed, cfg.scale, say)
        raw = read_labels(gen.labels_path)
        labels = {k: v.label != "legit" for k, v in raw.items()}
        cohorts = {k: f"{v.label}:{v.campaign_id or v.profile or k}" for k, v in raw.items()}
        out.append(DevLog(name, _log(gen), read_accounts(gen.accounts_path), labels, cohorts))
    return out


def collect(
    logs: Sequence[DevLog], say: Progress, campaigns: bool = True
) -> dict[str, list[Snapshots]]:
    """Every dev log replayed for each evidence set of ``KINDS``, evidence at snapshots."""
    policy = load_policy()
    snaps: dict[str, list[Snapshots]] = {kind: [] for kind in KINDS}
    for dev in logs:
        for kind, snap in snaps.items():
            say(f"replaying {dev.name} ({kind})")
            source = dev.source(metadata_only=DevLog.kind(kind)[0])
            accounts = dev.accounts_for(kind)
            engine = replay(
                source,
                engine_factory(policy, accounts, campaigns=campaigns, cls=SnapshotEngine),
            ).engine
            assert isinstance(engine, SnapshotEngine)
            snap.append(engine.finish())
    return snaps


def margins(
    logs: Sequence[DevLog], scorer: LogOddsScorer, kind: str, campaigns: bool = True
) -> list[dict[str, float]]:
    """Per dev log, every account's largest decision margin under ``scorer`` (prior ½) on
    the ``kind`` evidence set."""
    policy = load_policy()
    out = []
    for dev in logs:
        engine = replay(
            dev.source(DevLog.kind(kind)[0]),
            engine_factory(
                policy,
                dev.accounts_for(kind),
                campaigns=campaigns,
                cls=MarginEngine,
                scorer=scorer,
            ),
        ).engine
        assert isinstance(engine, MarginEngine)
        out.append(engine.margin)
    return out


def choose_prior(curves: Mapping[str, list[dict[str, float]]], max_fpr: float) -> float:
    """The largest prior on the grid at which every model's dev FPR is within ``max_fpr`` there
    *and* at the next prior of the grid: one step of margin, so the operating point never sits
    at the edge of what dev data allows (the grid's last prior is never chosen).

    >>> row = lambda p, f: {"prior": p, "fpr": f, "recall": 0.0}
    >>> choose_prior({"full": [row(0.01, 0), row(0.05, 0), row(0.1, 0.001)]}, 0.0005)
    0.01
    """
    first = next(iter(curves.values()))
    within = [all(c[i]["fpr"] <= max_fpr for c in curves.values()) for i in range(len(first))]
    ok = [first[i]["prior"] for i in range(len(within) - 1) if within[i] and within[i + 1]]
    return max(ok) if ok else PRIOR_GRID[0]


def calibrate(cfg: CalibrateConfig, say: Progress = lambda _: None) -> dict[str, Any]:
    """Fit both models, choose the prior, write the combiner file; returns what was written."""
    if cfg.prior is not None and not 0.0 < cfg.prior < 1.0:
        raise ConfigError(f"--prior must be in (0, 1), got {cfg.prior}")
    t0 = time.perf_counter()
    logs = generate_dev(cfg, say)
    snaps = collect(logs, say, cfg.campaigns)
    labels = [dev.labels for dev in logs]
    text_signals = frozenset(s.id for s in create_signals() if s.needs_text)
    account_signals = frozenset(s.id for s in create_signals() if s.family == "signup")
    say("fitting")
    cohorts = [dev.cohorts for dev in logs]
    designs = {name: design(s, labels, cohorts) for name, s in snaps.items()}
    for name, d in designs.items():  # kept for refits (bench/ablation.py)
        d.save(cfg.out / f"design-{name}.npz")
    models = {
        name: fit_model(d, text_signals, metadata=DevLog.kind(name)[0])
        for name, d in designs.items()
    }
    doc: dict[str, Any] = {
        "format": 1,
        "prior": 0.5,
        "text_signals": sorted(text_signals),
        "account_signals": sorted(account_signals),
        "signal_versions": {s.id: s.version for s in create_signals()},
        "models": models,
    }
    _write(cfg.write, doc)
    even = LogOddsScorer.load(cfg.write)
    curves = {}
    for name in models:
        say(f"operating curve on dev ({name})")
        curves[name] = operating_curve(margins(logs, even, name, cfg.campaigns), labels)
    if cfg.prior is not None:
        doc["prior"] = cfg.prior
    else:  # one operating point per pair: with the accounts file, and without it
        for pair in (KINDS[:2], KINDS[2:]):
            chosen = choose_prior({k: curves[k] for k in pair}, cfg.max_fpr)
            for name in pair:
                models[name]["prior"] = chosen
        doc["prior"] = models["full"]["prior"]
    doc["operating_curve_dev"] = curves
    doc["fitted_on"] = {
        "split": "dev",
        "scenarios": list(cfg.scenarios),
        "seed": cfg.seed,
        "scale": cfg.scale,
        "campaigns": cfg.campaigns,
        "snapshots": sorted(SNAPSHOTS),
        "prior_rule": "given"
        if cfg.prior is not None
        else f"per pair: largest with dev FPR <= {cfg.max_fpr} there and one step beyond",
        "date": datetime.now(UTC).date().isoformat(),
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    _write(cfg.write, doc)
    return doc


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n")
    LogOddsScorer.load(path)  # what was written must load


def describe(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    """(signal, weight in each model of ``KINDS`` present) rows, heaviest first, for the
    CLI's table."""
    ws = [doc["models"][k]["weights"] for k in KINDS if k in doc["models"]]
    names = sorted({k for w in ws for k in w}, key=lambda k: -max(w.get(k, 0) for w in ws))

    def fmt(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    return [(k, *(fmt(w.get(k)) for w in ws)) for k in names]
