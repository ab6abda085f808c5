"""Combining signal evidence into one calibrated, probability-like score.

Each signal reports evidence in log-odds units. The scorer is a logistic model over them:
``score = σ(intercept + Σ wᵢ · evidenceᵢ)`` with every weight ≥ 0, so more evidence of
distillation can never lower the score (a monotone model an analyst can read: each
signal's contribution is ``wᵢ · evidenceᵢ``). The weights are fitted on the benchmark's
dev split (``distillwatch bench calibrate``; docs/scoring.md says how and why) and shipped
as ``combiner.json``; the intercept is set so that the score is the posterior probability
of distillation when ``prior`` of active accounts distil.

Up to four models live in the file, one per kind of evidence an account can have: ``full``
for accounts whose prompt text is in the log, ``metadata`` for accounts without it (a
metadata-only log), and ``full-noaccounts`` / ``metadata-noaccounts`` for accounts with no
sign-up metadata (no accounts file, or the account is not in it — the accounts file is
optional in the spec). Signals explain each other away (the sign-up signals carry much of
what content signals would otherwise carry), so each model is fitted on the evidence it
will actually see; a model missing from the file falls back to the one with accounts.
Each model may carry its own operating point (``prior``), chosen on dev like the file's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from distillwatch.errors import ConfigError
from distillwatch.records import SignalValue

DEFAULT_COMBINER = Path(__file__).parent / "combiner.json"


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class LinearModel:
    """One logistic model: intercept and non-negative weights by signal id."""

    intercept: float
    weights: Mapping[str, float] = field(default_factory=dict)
    default_weight: float = 1.0
    """Weight of a signal the model was not fitted with (a new or third-party signal)."""

    def z(self, values: Sequence[SignalValue]) -> float:
        z = self.intercept
        w, d = self.weights, self.default_weight
        for v in values:
            if v.available:
                z += w.get(v.signal_id, d) * v.evidence
        return z


class LogOddsScorer:
    """``score = σ(intercept + Σ weight_i · evidence_i)`` over the available signals.

    Without a fitted combiner every weight is 1 and the intercept is ``logit(prior)``
    (a naive-Bayes sum of the signals' log-likelihood ratios).

    >>> from distillwatch.records import SignalValue
    >>> s = LogOddsScorer(prior=0.5)
    >>> s.score([SignalValue(signal_id="x", version=1, value=1.0, evidence=0.0, explanation="")])
    0.5
    """

    def __init__(
        self,
        prior: float = 0.01,
        weights: Mapping[str, float] | None = None,
        *,
        full: LinearModel | None = None,
        metadata: LinearModel | None = None,
        full_noaccounts: LinearModel | None = None,
        metadata_noaccounts: LinearModel | None = None,
        text_signals: frozenset[str] = frozenset(),
        account_signals: frozenset[str] = frozenset(),
        source: str = "hand-set",
    ) -> None:
        if not 0.0 < prior < 1.0:
            raise ValueError("prior must be in (0, 1)")
        self.prior = prior
        self.full = full or LinearModel(logit(prior), dict(weights or {}))
        self.metadata = metadata or self.full
        self.full_noaccounts = full_noaccounts or self.full
        self.metadata_noaccounts = metadata_noaccounts or self.metadata
        self.text_signals = text_signals
        self.account_signals = account_signals
        """Signals computed from the accounts file (sign-up): none available → a
        ``-noaccounts`` model."""
        self._one_model = (
            self.metadata is self.full
            and self.full_noaccounts is self.full
            and self.metadata_noaccounts is self.full
        )
        self.source = source

    @property
    def weights(self) -> Mapping[str, float]:
        return self.full.weights

    def model_for(self, values: Sequence[SignalValue]) -> LinearModel:
        """``full`` when any text signal could be computed, else ``metadata``; their
        ``-noaccounts`` twin when no sign-up signal could be."""
        if self._one_model:
            return self.full
        text = accounts = False
        for v in values:
            if v.available:
                text = text or v.signal_id in self.text_signals
                accounts = accounts or v.signal_id in self.account_signals
                if text and accounts:
                    break
        if accounts or not self.account_signals:
            return self.full if text else self.metadata
        return self.full_noaccounts if text else self.metadata_noaccounts

    def score(self, values: Sequence[SignalValue]) -> float:
        z = self.model_for(values).z(values)
        if z < -500:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    def contributions(self, values: Sequence[SignalValue]) -> dict[str, float]:
        """Each available signal's term ``wᵢ · evidenceᵢ`` in the score's log-odds."""
        m = self.model_for(values)
        return {
            v.signal_id: m.weights.get(v.signal_id, m.default_weight) * v.evidence
            for v in values
            if v.available
        }

    @classmethod
    def load(cls, path: Path = DEFAULT_COMBINER, prior: float | None = None) -> LogOddsScorer:
        """A fitted combiner (``combiner.json``); ``prior`` overrides the file's."""
        try:
            doc: dict[str, Any] = msgspec.json.decode(path.read_bytes())
            p = float(prior if prior is not None else doc["prior"])

            def at(m: dict[str, Any]) -> float:
                """The model's own operating point unless ``prior`` overrides every one."""
                return p if prior is not None else float(m.get("prior", p))

            models = {
                name: LinearModel(
                    intercept=float(m["intercept"]) + logit(at(m)) - float(m["fitted_prior_logit"]),
                    weights={k: float(w) for k, w in m["weights"].items()},
                    default_weight=float(m.get("default_weight", 0.0)),
                )
                for name, m in doc["models"].items()
            }
            full = models["full"]
            if any(w < 0 for m in models.values() for w in m.weights.values()):
                raise ValueError("negative weight (the model must be monotone)")
        except (OSError, KeyError, TypeError, ValueError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{path}: not a combiner file ({exc})") from exc
        return cls(
            p,
            full=full,
            metadata=models.get("metadata"),
            full_noaccounts=models.get("full-noaccounts"),
            metadata_noaccounts=models.get("metadata-noaccounts"),
            text_signals=frozenset(doc.get("text_signals", ())),
            account_signals=frozenset(doc.get("account_signals", ())),
            source=path.name,
        )


def default_scorer() -> LogOddsScorer:
    """The shipped fitted combiner, or hand-set weights when there is none."""
    if DEFAULT_COMBINER.is_file():
        return LogOddsScorer.load()
    return LogOddsScorer()
