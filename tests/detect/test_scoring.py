"""The combiner: a monotone logistic model over signal evidence, loaded from JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from distillwatch.bench.calibrate import Snapshots, design, fit_logistic
from distillwatch.detect.scoring import DEFAULT_COMBINER, LogOddsScorer
from distillwatch.errors import ConfigError
from distillwatch.records import Score, SignalValue


def sv(sid: str, evidence: float, available: bool = True) -> SignalValue:
    return SignalValue(
        signal_id=sid,
        version=1,
        value=None,
        evidence=evidence,
        explanation=sid,
        available=available,
    )


def combiner(tmp_path: Path, **override: object) -> Path:
    doc = {
        "format": 1,
        "prior": 0.01,
        "text_signals": ["content.x"],
        "models": {
            "full": {
                "intercept": 0.0, "fitted_prior_logit": 0.0,
                "weights": {"a": 2.0, "content.x": 1.0},
            },
            "metadata": {"intercept": 1.0, "fitted_prior_logit": 0.0, "weights": {"a": 3.0}},
        },
    }  # fmt: skip
    doc.update(override)
    path = tmp_path / "combiner.json"
    path.write_text(json.dumps(doc))
    return path


def test_intercept_moves_to_the_stated_prior(tmp_path: Path) -> None:
    s = LogOddsScorer.load(combiner(tmp_path), prior=0.2)
    assert s.score([sv("content.x", 0.0)]) == pytest.approx(0.2)
    assert LogOddsScorer.load(combiner(tmp_path)).score([sv("content.x", 0.0)]) == pytest.approx(
        0.01
    )


def test_metadata_model_when_no_text_signal_is_available(tmp_path: Path) -> None:
    s = LogOddsScorer.load(combiner(tmp_path), prior=0.5)
    with_text = [sv("a", 1.0), sv("content.x", 0.5)]
    without = [sv("a", 1.0), sv("content.x", 0.0, available=False)]
    assert s.score(with_text) == pytest.approx(1 / (1 + math.exp(-2.5)))
    assert s.score(without) == pytest.approx(1 / (1 + math.exp(-4.0)))


def test_noaccounts_models_when_no_signup_signal_is_available(tmp_path: Path) -> None:
    raw = json.loads(combiner(tmp_path).read_text())
    raw["account_signals"] = ["signup.age"]
    raw["models"]["full-noaccounts"] = {
        "intercept": 0.5, "fitted_prior_logit": 0.0, "weights": {"a": 4.0, "content.x": 2.0},
        "prior": 0.2,
    }  # fmt: skip
    raw["models"]["metadata-noaccounts"] = {
        "intercept": -1.0,
        "fitted_prior_logit": 0.0,
        "weights": {"a": 5.0},
        "prior": 0.2,
    }
    path = tmp_path / "c4.json"
    path.write_text(json.dumps(raw))
    s = LogOddsScorer.load(path)
    age, no_age = sv("signup.age", 0.0), sv("signup.age", 0.0, available=False)
    text, no_text = sv("content.x", 1.0), sv("content.x", 0.0, available=False)
    shift = math.log(0.01 / 0.99)  # the file's prior for the models with accounts
    own = math.log(0.2 / 0.8)  # the no-accounts models' own operating point

    def z(values: list[SignalValue]) -> float:
        return s.model_for(values).z(values)

    assert z([sv("a", 1.0), text, age]) == pytest.approx(0.0 + 2.0 + 1.0 + shift)
    assert z([sv("a", 1.0), no_text, age]) == pytest.approx(1.0 + 3.0 + shift)
    assert z([sv("a", 1.0), text, no_age]) == pytest.approx(0.5 + 4.0 + 2.0 + own)
    assert z([sv("a", 1.0), no_text, no_age]) == pytest.approx(-1.0 + 5.0 + own)
    # an explicit prior moves every model to it
    forced = LogOddsScorer.load(path, prior=0.5)
    assert forced.model_for([no_age]).intercept == pytest.approx(-1.0)
    # a file without the no-accounts models falls back to the models with accounts
    old = LogOddsScorer.load(combiner(tmp_path, account_signals=["signup.age"]), prior=0.5)
    assert old.model_for([sv("a", 1.0), text, no_age]) is old.full
    assert old.model_for([sv("a", 1.0), no_text, no_age]) is old.metadata


def test_unknown_signals_get_the_default_weight(tmp_path: Path) -> None:
    s = LogOddsScorer.load(combiner(tmp_path), prior=0.5)
    assert s.contributions([sv("content.x", 0.0), sv("new.signal", 0.7)])["new.signal"] == 0.0
    raw = json.loads(combiner(tmp_path).read_text())
    raw["models"]["full"]["default_weight"] = 1.0
    (tmp_path / "c2.json").write_text(json.dumps(raw))
    s2 = LogOddsScorer.load(tmp_path / "c2.json", prior=0.5)
    assert s2.contributions([sv("content.x", 0.0), sv("new.signal", 0.7)])["new.signal"] == 0.7


def test_negative_weights_and_garbage_are_refused(tmp_path: Path) -> None:
    bad = combiner(tmp_path)
    raw = json.loads(bad.read_text())
    raw["models"]["full"]["weights"]["a"] = -0.5
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="negative weight"):
        LogOddsScorer.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a combiner file"):
        LogOddsScorer.load(bad)


def test_reasons_rank_by_weighted_contribution_and_skip_zero_weights() -> None:
    score = Score(account_id="a", score=0.9, signals=(sv("big", 3.0), sv("small", 1.0)))
    assert score.reasons() == ["big", "small"]
    assert score.reasons({"big": 0.0, "small": 0.5}) == ["small"]


def test_shipped_combiner_loads_and_is_monotone() -> None:
    if not DEFAULT_COMBINER.is_file():
        pytest.skip("no fitted combiner shipped")
    s = LogOddsScorer.load()
    models = (s.full, s.metadata, s.full_noaccounts, s.metadata_noaccounts)
    assert len({id(m) for m in models}) == 4  # a model fitted for each kind of evidence
    for m in models:
        assert all(w >= 0 for w in m.weights.values())
    assert "signup.account_age" in s.account_signals
    assert not set(s.full_noaccounts.weights) & s.account_signals


def test_fit_recovers_a_useful_signal_and_clips_a_misleading_one() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    y = (rng.random(n) < 0.3).astype(float)
    useful = y * 2.0 + rng.normal(0, 1, n)
    misleading = -y * 1.0 + rng.normal(0, 1, n)  # evidence *against* attackers
    x = np.column_stack([useful, misleading])
    _, coef = fit_logistic(x, y, np.ones(n), l2=0.01)
    assert coef[0] > 1.0
    assert coef[1] == 0.0  # the monotone constraint holds it at zero, not negative


def test_design_weighs_accounts_and_classes_equally() -> None:
    snap = Snapshots(
        account=["a", "a", "a", "b", "c"],
        evidence=[{"s": 1.0}, {"s": 2.0}, {"s": 3.0}, {"s": 0.5}, {"t": 1.0}],
    )
    d = design([snap], [{"a": True, "b": False, "c": False}])
    assert d.features == ["s", "t"]
    assert d.weight[:3].sum() == pytest.approx(d.weight[3:].sum())
    assert d.weight[0] == pytest.approx(d.weight[1])
    assert d.weight[3] == pytest.approx(d.weight[4])
    with pytest.raises(ConfigError):
        design([snap], [{"a": True}])


def test_cohorts_weigh_by_the_square_root_of_their_size() -> None:
    accounts = [f"h{i}" for i in range(9)] + ["s", "l1", "l2"]
    snap = Snapshots(account=accounts, evidence=[{"x": 1.0}] * len(accounts))
    labels = {a: a[0] in "hs" for a in accounts}
    cohorts = {**{f"h{i}": "hydra" for i in range(9)}, "s": "scraper", "l1": "chat", "l2": "chat"}
    d = design([snap], [labels], [cohorts])
    hydra, scraper = d.weight[:9].sum(), d.weight[9]
    assert hydra / scraper == pytest.approx(3.0)  # √9 against √1
    assert d.weight[:10].sum() == pytest.approx(d.weight[10:].sum())


def test_operating_curve_and_prior_choice() -> None:
    from distillwatch.bench.calibrate import PRIOR_GRID, choose_prior, operating_curve
    from distillwatch.detect.scoring import logit

    # acted on with prior π iff margin + logit(π) >= 0
    margins = {"l1": 2.5, "l2": -9.0, "a1": 6.0, "a2": 3.5}
    labels = {"l1": False, "l2": False, "a1": True, "a2": True, "a3": True}  # a3 never decided
    curve = operating_curve([margins], [labels])
    assert [row["prior"] for row in curve] == list(PRIOR_GRID)
    for row in curve:
        cut = -logit(row["prior"])
        assert row["fpr"] == (0.5 if cut <= 2.5 else 0.0)
        assert row["recall"] == pytest.approx(sum(m >= cut for m in (6.0, 3.5)) / 3)
    chosen = choose_prior({"full": curve, "metadata": curve}, max_fpr=0.0)
    assert 2.5 + logit(chosen) < 0  # the legitimate account stays below the cut
    safe = [p for p in PRIOR_GRID if 2.5 + logit(p) < 0]
    # one grid step of margin: the largest safe prior whose next grid prior is safe too
    assert chosen == safe[-2]


class _FixedLinker:
    """A linker that always says the same thing about every account."""

    def __init__(self, sid: str, evidence: float, campaign: str | None) -> None:
        self.sid, self.ev, self.campaign = sid, evidence, campaign
        self.seen = 0
        self.acted_on: list[str] = []

    def observe(self, exchange: object, t: float) -> None:
        self.seen += 1

    def acted(self, account_id: str, action: object, t: float) -> None:
        self.acted_on.append(account_id)

    def evidence(self, account_id: str, now: float) -> SignalValue | None:
        return sv(self.sid, self.ev)

    def campaign_of(self, account_id: str) -> str | None:
        return self.campaign


def test_several_linkers_each_add_their_evidence() -> None:
    from distillwatch.detect import Engine
    from distillwatch.policy import load_policy
    from tests.factories import exchange

    a, b = _FixedLinker("campaign.link", 2.0, None), _FixedLinker("intel.match", 3.0, "camp_x")
    engine = Engine([], load_policy(), scorer=LogOddsScorer(0.5), linker=[a, b])
    for i in range(30):
        engine.observe(exchange(i, account="acct", seconds=float(i)))
    assert a.seen == b.seen == 30 and engine.linker is a
    verdict = next(engine.verdicts())
    assert verdict.score == pytest.approx(1 / (1 + math.exp(-5.0)), abs=1e-6)
    assert verdict.campaign_id == "camp_x"  # the first linker that places the account
    assert a.acted_on == b.acted_on == ["acct"] * 2  # monitored, then acted on
