"""Combining signal evidence into one probability-like score.

Each signal reports evidence in log-odds units; the scorer adds them to the prior
log-odds of distillation (naive-Bayes style) and maps the sum through the logistic
function. Weights are per signal. This is the skeleton's combiner: the weights are set by
hand, so the score is *probability-like*, not yet calibrated (see docs/signals.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from distillwatch.records import SignalValue


class LogOddsScorer:
    """``score = σ(logit(prior) + Σ weight_i · evidence_i)`` over the available signals.

    >>> from distillwatch.records import SignalValue
    >>> s = LogOddsScorer(prior=0.5)
    >>> s.score([SignalValue(signal_id="x", version=1, value=1.0, evidence=0.0, explanation="")])
    0.5
    """

    def __init__(self, prior: float = 0.01, weights: Mapping[str, float] | None = None) -> None:
        if not 0.0 < prior < 1.0:
            raise ValueError("prior must be in (0, 1)")
        self.prior_logit = math.log(prior / (1.0 - prior))
        self.weights = dict(weights or {})

    def score(self, values: Sequence[SignalValue]) -> float:
        z = self.prior_logit
        for v in values:
            if v.available:
                z += self.weights.get(v.signal_id, 1.0) * v.evidence
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0
