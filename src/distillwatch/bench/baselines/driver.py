"""The baseline contract and its causal replay driver.

A baseline is a per-account online detector: it folds exchanges in one at a time, in time
order, and after each says how suspicious the account looks now and whether it would act on it.
``run_baseline`` replays a log through one and writes the same ``Verdict`` records as
``distillwatch scan`` (``shared/spec/exchange-log.md``), so the benchmark scores every system
with the same code. Causality follows ``docs/architecture.md``: when an account is first flagged
after its exchange *e*, ``first_action_ts`` is ``e.ts`` and ``exchanges_before_action`` counts
the account's served exchanges so far, *e* included (it was served before the decision existed).

>>> from distillwatch.bench.baselines import create_baseline
>>> from datetime import datetime, UTC
>>> from distillwatch.records import Exchange
>>> t = datetime(2026, 3, 1, tzinfo=UTC)
>>> log = [Exchange(id=f"x{i}", ts=t, account_id="a", ip="192.0.2.1", model="m")
...        for i in range(25)]
>>> [v] = run_baseline(create_baseline("rate-limit"), [log])
>>> v.action.value, v.exchanges_before_action
('block', 21)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from distillwatch.errors import DistillwatchError
from distillwatch.records import Action, Exchange, Verdict


class ReplayOrderError(DistillwatchError):
    """The exchanges given to ``run_baseline`` go back in time (replay needs time order)."""


class Observation(NamedTuple):
    """What a baseline says right after folding in one exchange."""

    score: float
    flagged: bool


class Baseline(Protocol):
    """A causal per-account detector that distillwatch is compared with.

    ``calibrate`` fits thresholds on legitimate development traffic only (the caller chooses
    it; a baseline with nothing to fit does nothing). ``observe`` folds one exchange into its
    account's state and returns the account's suspicion in [0, 1]; ``observe_batch`` does the
    same for consecutive exchanges (letting text baselines embed a whole batch at once) and
    returns, per exchange, the score and flag *as they stood right after it*.
    """

    name: str

    def calibrate(self, benign: Iterable[Exchange]) -> None: ...

    def observe(self, e: Exchange) -> float: ...

    def observe_batch(self, batch: Sequence[Exchange]) -> list[Observation]: ...

    def flagged(self, account_id: str) -> bool: ...

    def reasons(self, account_id: str) -> list[str]: ...


class _Account:
    __slots__ = ("first_n", "first_ts", "score", "served")

    def __init__(self) -> None:
        self.served = 0
        self.score = 0.0
        self.first_ts: datetime | None = None
        self.first_n: int | None = None


def run_baseline(
    baseline: Baseline, batches: Iterable[list[Exchange]], accounts: Iterable[str] = ()
) -> list[Verdict]:
    """Replay ``batches`` (time order) through ``baseline``: one verdict per account.

    The final action is ``block`` when the baseline flags the account at the end of the log,
    else ``allow``; ``first_action_ts`` and ``exchanges_before_action`` come from the first
    time it flagged the account, whatever came after. Accounts named in ``accounts`` with no
    exchanges get an ``allow`` verdict. Memory: one small record per account here, plus the
    baseline's own bounded per-account state.
    """
    seen: dict[str, _Account] = {}
    last: datetime | None = None
    for batch in batches:
        if not batch:
            continue
        for e in batch:
            if last is not None and e.ts < last:
                raise ReplayOrderError(
                    f"exchange {e.id} at {e.ts.isoformat()} comes after one at "
                    f"{last.isoformat()}: replay the log in time order"
                )
            last = e.ts
        for e, obs in zip(batch, baseline.observe_batch(batch), strict=True):
            acct = seen.get(e.account_id)
            if acct is None:
                acct = seen[e.account_id] = _Account()
            if e.served:
                acct.served += 1
            acct.score = obs.score
            if obs.flagged and acct.first_ts is None:
                acct.first_ts = e.ts
                acct.first_n = acct.served
    verdicts = [
        Verdict(
            account_id=account_id,
            score=min(1.0, max(0.0, acct.score)),
            action=Action.BLOCK if baseline.flagged(account_id) else Action.ALLOW,
            first_action_ts=acct.first_ts,
            exchanges_before_action=acct.first_n,
            reasons=baseline.reasons(account_id),
        )
        for account_id, acct in seen.items()
    ]
    verdicts.extend(
        Verdict(account_id=a, score=0.0, action=Action.ALLOW)
        for a in dict.fromkeys(accounts)
        if a not in seen
    )
    return verdicts
