"""A benign-calibrated MMD window test over prompt embeddings.

Liu, Guo & Dong, "An Embarrassingly Simple Detector for Model Extraction Attacks in Large
Language Model API Traffic", arXiv:2606.05725 (2026; code: github.com/LabRAI/mmd-llm-mea-detection).
The paper embeds incoming queries, tests whether a traffic window's distribution deviates from
historical benign traffic with the maximum mean discrepancy, and sets the decision threshold
from benign-vs-benign comparisons only (a benign reference pool and a held-out benign
calibration pool). Only the abstract and the artifact's README could be read here, not the
method section, so the estimator, kernel and windowing below are the standard ones (Gretton
et al., "A Kernel Two-Sample Test", JMLR 2012), chosen to fit a per-account causal replay:

* reference *R*: up to ``reference_size`` (512) benign prompt embeddings, drawn (seeded) from
  the calibration traffic of half the benign accounts (split by a hash of the account id);
* kernel: Gaussian RBF ``k(x, y) = exp(-|x - y|² / (2 σ²))``, σ the median pairwise distance
  in *R* (median heuristic);
* per account, a sliding window *X* of its last ``window`` (32) prompts; once full, and then
  every ``every`` (8) prompts, the unbiased estimate
  ``MMD²_u = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(r_i, r_j) - 2 mean_{i,j} k(x_i, r_j)``
  (the paper uses windows of 1,500 queries of mixed traffic; an account-level detector cannot
  wait that long);
* threshold τ from the other half of the benign accounts, replayed with the same schedule:
  by default (``level="account"``) the ``1 - alpha`` (99 %) quantile of each account's highest
  MMD², so about 1 % of benign accounts are ever flagged, the unit the benchmark counts;
  with ``level="window"``, or when fewer than ``min_calibration_accounts`` benign accounts
  fill a window, the ``1 - alpha`` quantile over all their windows plus ``random_windows``
  (200) windows drawn at random from the reference side's remaining prompts (the paper's
  benign-vs-benign null); calibration replays at most the first ``max_prompts_per_account``
  (512) prompts of each benign account and ``max_calibration_prompts`` (65,536) in all;
* flagged while the latest MMD² > τ; score ``r / (1 + r)`` with ``r = max(MMD², 0) / τ``
  (0.5 exactly at the threshold).

Without calibration, or without enough benign prompt text to build *R*, the test cannot run and
``reasons`` says so.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from distillwatch.bench.baselines.embed import (
    PromptEmbedder,
    TextBaseline,
    Vectors,
    benign_chunks,
    embed_batch,
)
from distillwatch.records import Account, Exchange

_F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MmdCalibration:
    """How τ was set: ``level``, how many benign accounts and windows, σ of the kernel."""

    tau: float
    sigma: float
    level: str
    accounts: int
    windows: int
    reference: int


class _Reference:
    """The benign reference sample and what every MMD² against it reuses."""

    def __init__(self, r: Vectors) -> None:
        self.r = r.astype(np.float64)
        self.r_sq = np.einsum("ij,ij->i", self.r, self.r)
        d2 = np.maximum(self.r_sq[:, None] + self.r_sq[None, :] - 2.0 * self.r @ self.r.T, 0.0)
        m = len(self.r)
        off = d2[~np.eye(m, dtype=bool)]
        sigma = float(np.median(np.sqrt(off))) if off.size else 1.0
        self.sigma = sigma if sigma > 1e-9 else 1.0
        self.gamma = 1.0 / (2.0 * self.sigma**2)
        k = np.exp(-self.gamma * d2)
        self.rr = float((k.sum() - np.trace(k)) / (m * (m - 1))) if m > 1 else 0.0

    def mean_k(self, x: Vectors) -> _F64:
        """Mean kernel value of each row of ``x`` against R."""
        x64 = x.astype(np.float64)
        x_sq = np.einsum("ij,ij->i", x64, x64)
        d2 = np.maximum(x_sq[:, None] + self.r_sq[None, :] - 2.0 * x64 @ self.r.T, 0.0)
        out: _F64 = np.exp(-self.gamma * d2).mean(axis=1)
        return out

    def mmd2(self, x: NDArray[np.floating[Any]], x_sq: _F64, kr: _F64) -> float:
        """Unbiased MMD² of window ``x`` (rows, squared norms, mean kernel to R) against R."""
        n = len(x)
        d2 = np.maximum(x_sq[:, None] + x_sq[None, :] - 2.0 * x @ x.T, 0.0)
        k = np.exp(-self.gamma * d2)
        xx = (float(k.sum()) - n) / (n * (n - 1))  # k(x, x) = 1 on the diagonal
        return xx + self.rr - 2.0 * float(kr.mean())


class _State:
    __slots__ = ("kr", "mmd2", "n", "x", "x_sq")

    def __init__(self, window: int, dim: int) -> None:
        self.x: NDArray[np.float32] = np.zeros((window, dim), dtype=np.float32)
        self.x_sq: _F64 = np.zeros(window, dtype=np.float64)
        self.kr: _F64 = np.zeros(window, dtype=np.float64)
        self.n = 0
        self.mmd2: float | None = None


class MmdBaseline(TextBaseline):
    """Per-account sliding-window MMD² against a benign reference, benign-calibrated τ.

    >>> from datetime import datetime, timedelta, UTC
    >>> from distillwatch.bench.sources import load_pools
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> def ask(i, text, account):
    ...     return Exchange(id=f"x{i}", ts=t0 + timedelta(seconds=i), account_id=account,
    ...                     ip="192.0.2.1", model="m",
    ...                     request={"messages": [{"role": "user", "content": text}]})
    >>> pools = load_pools(None)
    >>> chat = [c.turns[0] for s in ("oasst", "hh-rlhf", "koala") for c in pools[s]]
    >>> mmd = MmdBaseline(min_calibration_accounts=5)
    >>> mmd.calibrate(ask(i, t, f"dev-{i % 20}") for i, t in enumerate(chat))
    >>> maths = [c.turns[0] for c in pools["gsm8k"][:32]]
    >>> scores = [mmd.observe(ask(10_000 + i, t, "m")) for i, t in enumerate(maths)]
    >>> scores[-2], scores[-1] > 0.5, mmd.flagged("m")
    (0.0, True, True)
    """

    name = "mmd"
    label = "MMD"

    def __init__(
        self,
        accounts: Mapping[str, Account] | None = None,
        *,
        embedder: PromptEmbedder | None = None,
        window: int = 32,
        every: int = 8,
        reference_size: int = 512,
        alpha: float = 0.01,
        level: Literal["account", "window"] = "account",
        random_windows: int = 200,
        min_calibration_accounts: int = 20,
        seed: int = 7,
        max_calibration_prompts: int = 65_536,
        max_prompts_per_account: int = 512,
    ) -> None:
        super().__init__(embedder)
        self.window = window
        self.every = every
        self.reference_size = reference_size
        self.alpha = alpha
        self.level = level
        self.random_windows = random_windows
        self.min_calibration_accounts = min_calibration_accounts
        self.seed = seed
        self.max_calibration_prompts = max_calibration_prompts
        self.max_prompts_per_account = max_prompts_per_account
        self.tau = math.inf
        self.calibration: MmdCalibration | None = None
        self._ref: _Reference | None = None
        self._state: dict[str, _State] = {}

    # -- the detector -------------------------------------------------------------------------

    def _prepare(self, vectors: Vectors) -> Any:
        if self._ref is None or len(vectors) == 0:
            return None
        return self._ref.mean_k(vectors)

    def _fold(self, account_id: str, vectors: Vectors, row: int, prepared: Any) -> None:
        if self._ref is None:  # not calibrated: nothing to compare with
            return
        st = self._state.get(account_id)
        if st is None:
            st = self._state[account_id] = _State(self.window, vectors.shape[1])
        v = self._push(self._ref, st, vectors[row], float(prepared[row]))
        if v is not None:
            st.mmd2 = v

    def _push(self, ref: _Reference, st: _State, x: NDArray[np.float32], kr: float) -> float | None:
        """Add a prompt to the window; the MMD² when a check is due, else None."""
        i = st.n % self.window
        st.x[i] = x
        st.x_sq[i] = float(x @ x)
        st.kr[i] = kr
        st.n += 1
        due = st.n - self.window
        if due < 0 or due % self.every:
            return None
        return ref.mmd2(st.x, st.x_sq, st.kr)

    def score(self, account_id: str) -> float:
        st = self._state.get(account_id)
        if st is None or st.mmd2 is None:
            return 0.0
        r = max(st.mmd2, 0.0) / self.tau
        return r / (1.0 + r)

    def flagged(self, account_id: str) -> bool:
        st = self._state.get(account_id)
        return st is not None and st.mmd2 is not None and st.mmd2 > self.tau

    def _describe(self, account_id: str) -> str:
        st = self._state.get(account_id)
        if self._ref is None or self.calibration is None:
            return "no benign reference prompts (MMD not calibrated): MMD cannot run"
        if st is None or st.mmd2 is None:
            n = 0 if st is None else st.n
            return f"MMD: {n} prompts so far; the test needs a window of {self.window}"
        verb = ">" if st.mmd2 > self.tau else "≤"
        return (
            f"MMD: last {self.window} prompts vs benign reference MMD² = {st.mmd2:.4f} {verb} "
            f"τ = {self.tau:.4f} ({1 - self.alpha:.0%} benign {self.calibration.level} quantile)"
        )

    # -- calibration --------------------------------------------------------------------------

    def _reference_side(self, account_id: str) -> bool:
        return zlib.crc32(account_id.encode("utf-8")) % 2 == 0

    def calibrate(self, benign: Iterable[Exchange]) -> None:
        """R from one half of the benign accounts, τ from the other (one pass, in order)."""
        rng = np.random.default_rng(self.seed)
        pool: list[NDArray[np.float32]] = []  # reservoir of reference-side prompts
        pool_cap = max(8 * self.reference_size, 4096)
        pool_seen = 0
        held: dict[str, list[NDArray[np.float32]]] = {}  # calibration side, per account
        held_total = 0
        for chunk in benign_chunks(benign):
            positions, vectors = embed_batch(self.embedder, chunk)
            for row, i in enumerate(positions):
                acct = chunk[i].account_id
                if self._reference_side(acct):
                    pool_seen += 1
                    if len(pool) < pool_cap:
                        pool.append(vectors[row])
                    else:
                        j = int(rng.integers(pool_seen))
                        if j < pool_cap:
                            pool[j] = vectors[row]
                    continue
                seq = held.get(acct)
                if seq is None:
                    if held_total >= self.max_calibration_prompts:
                        continue
                    seq = held[acct] = []
                if len(seq) < self.max_prompts_per_account:
                    seq.append(vectors[row])
                    held_total += 1
        if len(pool) < 2 * self.window:
            self._ref, self.calibration, self.tau = None, None, math.inf
            return
        order = rng.permutation(len(pool))
        ref = _Reference(np.stack([pool[j] for j in order[: self.reference_size]]))
        rest = [pool[j] for j in order[self.reference_size :]]
        self._ref = ref

        maxima: list[float] = []
        windows: list[float] = []
        for seq in held.values():
            if len(seq) < self.window:
                continue
            vecs = np.stack(seq)
            kr = ref.mean_k(vecs)
            st = _State(self.window, vecs.shape[1])
            values: list[float] = []
            for j in range(len(vecs)):
                v = self._push(ref, st, vecs[j], float(kr[j]))
                if v is not None:
                    values.append(v)
            if values:
                maxima.append(max(values))
                windows.extend(values)
        source = rest if len(rest) >= self.window else [v for s in held.values() for v in s]
        if len(source) >= self.window:
            stacked = np.stack(source)
            kr_all = ref.mean_k(stacked)
            for _ in range(self.random_windows):
                pick = rng.choice(len(stacked), size=self.window, replace=False)
                x = stacked[pick]
                x_sq = np.einsum("ij,ij->i", x, x).astype(np.float64)
                windows.append(ref.mmd2(x, x_sq, kr_all[pick]))
        if self.level == "account" and len(maxima) >= self.min_calibration_accounts:
            level, values_for_tau = "account", maxima
        elif windows:
            level, values_for_tau = "window", windows
        else:
            self._ref, self.calibration, self.tau = None, None, math.inf
            return
        self.tau = max(float(np.quantile(values_for_tau, 1.0 - self.alpha)), 1e-9)
        self.calibration = MmdCalibration(
            tau=self.tau,
            sigma=ref.sigma,
            level=level,
            accounts=len(maxima),
            windows=len(windows),
            reference=len(ref.r),
        )
