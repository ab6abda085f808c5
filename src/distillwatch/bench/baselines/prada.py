"""PRADA, adapted from images to prompts.

Juuti, Szyller, Marchal & Asokan, "PRADA: Protecting against DNN Model Stealing Attacks",
IEEE EuroS&P 2019 (arXiv:1805.02628). PRADA watches one client's stream of queries: for each
query *x* it takes the distance *d_min* to the nearest earlier query kept in a *growing set*
*G*; *d_min* always joins the detection set *D*, and *x* joins *G* only when *d_min* exceeds the
threshold *T*, which then becomes ``max(T, mean(D_G) - std(D_G))`` over the distances of the
queries admitted to *G* (``D_G`` starts as ``{0}`` with *T* = 0). Benign queries give roughly
normally distributed *d_min*; synthetic extraction queries (perturbations of a few seeds) do
not, so PRADA computes the Shapiro-Wilk statistic *W* of *D* after discarding values more than
3 standard deviations from the mean, and raises the alarm while ``W < δ``. This follows the
authors' reference code (Aalto SSG's ``GrowingDistanceAgent``: ``l2`` distance, the
``mean_dif_std`` threshold rule, outliers cut at 3 σ, *W* refreshed every 10 queries).

Adaptation and simplifications, all deliberate:

* queries are prompts, embedded by ``embed.PromptEmbedder`` (unit vectors, L2 distance);
* PRADA keeps one growing set per class the model predicts; an LLM has no class label, so each
  account has a single growing set;
* bounded memory: *G* keeps its last ``set_size`` (256) members (oldest evicted) while the
  threshold statistics over ``D_G`` are running sums over every admission; *W* is computed on
  the last ``window`` (500) distances of *D*;
* *W* needs ``min_distances`` (30) distances (the reference code waits for 100) and is
  refreshed every ``check_every`` (10) distances; it is not computed when the distances have
  no spread (an account repeating one prompt), as in the reference code;
* δ is calibrated on legitimate development traffic (``calibrate``): the ``alpha`` (1 %)
  quantile of the lowest *W* each benign account reaches, so about 1 % of benign accounts
  with enough prompts are ever flagged. Where too few benign accounts reach
  ``min_distances`` it falls back to ``FALLBACK_DELTA`` = 0.95, the default of public PRADA
  re-implementations (the paper sets δ per dataset from benign data, as calibration does).

Score: 0 until *W* exists, then ``0.5 * (1 - W) / (1 - δ)`` for ``W ≥ δ`` and
``0.5 + 0.5 * (δ - W) / δ`` below: decreasing in *W*, 0.5 exactly at the threshold.

"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from distillwatch.bench.baselines.embed import (
    PromptEmbedder,
    TextBaseline,
    Vectors,
    benign_chunks,
    embed_batch,
)
from distillwatch.records import Account, Exchange

FALLBACK_DELTA = 0.95


@dataclass(frozen=True, slots=True)
class PradaCalibration:
    """How δ was chosen: from ``accounts`` benign accounts, or the fallback."""

    delta: float
    accounts: int
    source: str


class _State:
    __slots__ = (
        "checks", "dists", "filled", "g_m2", "g_mean", "g_n", "grow", "grow_sq", "head",
        "n_dists", "threshold", "w",
    )  # fmt: skip

    def __init__(self, dim: int, window: int) -> None:
        self.grow: NDArray[np.float32] = np.empty((16, dim), dtype=np.float32)
        self.grow_sq: NDArray[np.float32] = np.empty(16, dtype=np.float32)
        self.filled = 0
        self.head = 0
        self.threshold = 0.0
        # running mean / M2 (Welford) of D_G, which starts as {0} as in the reference code
        self.g_n = 1
        self.g_mean = 0.0
        self.g_m2 = 0.0
        self.dists: NDArray[np.float64] = np.empty(window, dtype=np.float64)
        self.n_dists = 0
        self.w: float | None = None
        self.checks = 0


class PradaBaseline(TextBaseline):
    """PRADA on prompt embeddings: one growing set per account, Shapiro-Wilk on *d_min*.

    >>> from datetime import datetime, timedelta, UTC
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> def ask(i, text):
    ...     return Exchange(id=f"x{i}", ts=t0 + timedelta(seconds=i), account_id="a",
    ...                     ip="192.0.2.1", model="m",
    ...                     request={"messages": [{"role": "user", "content": text}]})
    >>> topics = ["photosynthesis", "black holes", "the French revolution", "gravity",
    ...           "compound interest", "plate tectonics", "vaccines", "the stock market",
    ...           "climate change"]
    >>> prompts = [f"Please explain {t} in a few simple words for a curious {who}"
    ...            for t in topics for who in ("student", "child", "beginner", "friend", "parent")]
    >>> prada = PradaBaseline()
    >>> scores = [prada.observe(ask(i, p)) for i, p in enumerate(prompts)]
    >>> scores[:30] == [0.0] * 30, scores[-1] > 0.5, prada.flagged("a")
    (True, True, True)
    """

    name = "prada"
    label = "PRADA"

    def __init__(
        self,
        accounts: Mapping[str, Account] | None = None,
        *,
        embedder: PromptEmbedder | None = None,
        set_size: int = 256,
        window: int = 500,
        min_distances: int = 30,
        check_every: int = 10,
        alpha: float = 0.01,
        min_calibration_accounts: int = 20,
        delta: float = FALLBACK_DELTA,
    ) -> None:
        super().__init__(embedder)
        self.set_size = set_size
        self.window = window
        self.min_distances = min(min_distances, window)
        self.check_every = check_every
        self.alpha = alpha
        self.min_calibration_accounts = min_calibration_accounts
        self.delta = delta
        self.calibration = PradaCalibration(delta, 0, "fixed (not calibrated)")
        self._state: dict[str, _State] = {}

    # -- the detector -------------------------------------------------------------------------

    def _prepare(self, vectors: Vectors) -> Any:
        return None

    def _fold(self, account_id: str, vectors: Vectors, row: int, prepared: Any) -> None:
        st = self._state.get(account_id)
        if st is None:
            st = self._state[account_id] = _State(vectors.shape[1], self.window)
        self._step(st, vectors[row])

    def _step(self, st: _State, x: NDArray[np.float32]) -> None:
        x_sq = float(x @ x)
        if st.filled == 0:  # first prompt: G = {x}, nothing to measure yet
            self._admit(st, x, x_sq)
            return
        g = st.grow[: st.filled]
        d2 = st.grow_sq[: st.filled] + x_sq - 2.0 * (g @ x)
        d_min = math.sqrt(max(0.0, float(d2.min())))
        st.dists[st.n_dists % self.window] = d_min
        st.n_dists += 1
        if d_min > st.threshold:  # x joins the growing set; T follows mean - std of D_G
            self._admit(st, x, x_sq)
            st.g_n += 1
            delta = d_min - st.g_mean
            st.g_mean += delta / st.g_n
            st.g_m2 += delta * (d_min - st.g_mean)
            std = math.sqrt(st.g_m2 / st.g_n)  # population std, as numpy's default
            st.threshold = max(st.threshold, st.g_mean - std)
        due = st.n_dists - self.min_distances
        if due >= 0 and due % self.check_every == 0:
            w = self._shapiro(st.dists[: min(st.n_dists, self.window)])
            if w is not None:
                st.w = w
                st.checks += 1

    def _admit(self, st: _State, x: NDArray[np.float32], x_sq: float) -> None:
        if st.filled < self.set_size:
            if st.filled == len(st.grow):
                size = min(2 * len(st.grow), self.set_size)
                st.grow = np.resize(st.grow, (size, st.grow.shape[1]))
                st.grow_sq = np.resize(st.grow_sq, size)
            i = st.filled
            st.filled += 1
        else:  # full: replace the oldest member
            i = st.head
            st.head = (st.head + 1) % self.set_size
        st.grow[i] = x
        st.grow_sq[i] = x_sq

    def _shapiro(self, d: NDArray[np.float64]) -> float | None:
        """W of ``d`` without values beyond 3 σ; None when too few remain or none vary."""
        mean, std = float(d.mean()), float(d.std())
        kept = d[np.abs(d - mean) < 3.0 * std]
        if kept.size < self.min_distances or float(np.ptp(kept)) <= 1e-12:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(stats.shapiro(kept).statistic)

    def score(self, account_id: str) -> float:
        st = self._state.get(account_id)
        if st is None or st.w is None:
            return 0.0
        w, delta = st.w, self.delta
        if w >= delta:
            return 0.5 * (1.0 - w) / (1.0 - delta) if delta < 1.0 else 0.0
        return min(1.0, 0.5 + 0.5 * (delta - w) / delta)

    def flagged(self, account_id: str) -> bool:
        st = self._state.get(account_id)
        return st is not None and st.w is not None and st.w < self.delta

    def _describe(self, account_id: str) -> str:
        st = self._state.get(account_id)
        if st is None:  # pragma: no cover - an account with a prompt has state
            return "PRADA: no prompts"
        if st.w is None:
            return (
                f"PRADA: {st.n_dists} nearest-prompt distances so far; the Shapiro-Wilk test "
                f"needs {self.min_distances} with some spread"
            )
        verb = "<" if st.w < self.delta else "≥"
        return (
            f"PRADA: Shapiro-Wilk W = {st.w:.3f} over the last "
            f"{min(st.n_dists, self.window)} nearest-prompt distances {verb} δ = "
            f"{self.delta:.3f} ({self.calibration.source})"
        )

    # -- calibration --------------------------------------------------------------------------

    def calibrate(self, benign: Iterable[Exchange]) -> None:
        """δ: the ``alpha`` quantile of each benign account's lowest W (one pass, in order)."""
        states: dict[str, _State] = {}
        lowest: dict[str, float] = {}
        for chunk in benign_chunks(benign):
            positions, vectors = embed_batch(self.embedder, chunk)
            for row, i in enumerate(positions):
                acct = chunk[i].account_id
                st = states.get(acct)
                if st is None:
                    st = states[acct] = _State(vectors.shape[1], self.window)
                checks = st.checks
                self._step(st, vectors[row])
                if st.checks > checks and st.w is not None:
                    lowest[acct] = min(lowest.get(acct, 1.0), st.w)
        if len(lowest) >= self.min_calibration_accounts:
            self.delta = float(np.quantile(np.fromiter(lowest.values(), float), self.alpha))
            self.calibration = PradaCalibration(
                self.delta,
                len(lowest),
                f"{self.alpha:.0%} of {len(lowest)} benign accounts fall below it",
            )
        else:
            self.delta = FALLBACK_DELTA
            self.calibration = PradaCalibration(
                self.delta,
                len(lowest),
                f"fixed: only {len(lowest)} benign accounts had enough prompts to calibrate",
            )
