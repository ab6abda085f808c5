"""The engine, live: exchanges in off the request path, decisions out before forwarding.

A finished exchange is made durable, then queued to one observer task that feeds
``Engine.observe`` in the order exchanges finish (their times clamped so the engine never
sees time run backwards). Observation happens after the response has been sent: it is never
on a request's critical path. A new request reads its account's current decision (an O(1)
look-up of the engine's last decision for it); the lag between an exchange finishing and the
engine having observed it is measured (``on_lag``) and bounded by the decision budget: when
the oldest exchange of the account still waiting for the engine has waited longer than the
budget, or the engine has failed on the account, ``on_error`` decides: ``open`` serves on the
last decision, ``closed`` refuses (503). Operators' overrides (allow-list, force block) win
over everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from distillwatch.clock import to_datetime
from distillwatch.detect import Engine
from distillwatch.gateway.overrides import Override, load_overrides, save_overrides
from distillwatch.policy import Policy
from distillwatch.records import Action, Exchange, Verdict

log = logging.getLogger("distillwatch.gateway")

Source = Literal["engine", "override", "fail-open", "fail-closed"]


@dataclass(frozen=True)
class Enforcement:
    """What applies to one request, and why."""

    action: Action
    source: Source
    rule: str


class LiveEngine:
    """Drive an :class:`Engine` from live traffic (one asyncio loop, no locks needed)."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_error: Literal["open", "closed"] = "open",
        budget_s: float = 0.05,
        slice_s: float = 0.002,
        on_observe: Callable[[float, bool], None] | None = None,
        on_lag: Callable[[float], None] | None = None,
        overrides_path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.on_error = on_error
        self.budget_s = budget_s
        self.slice_s = slice_s
        self.on_observe = on_observe
        self.on_lag = on_lag
        self._queue: deque[tuple[Exchange, float]] = deque()  # (exchange, submitted at)
        self._wake = asyncio.Event()
        # per account: when each of its exchanges still waiting for the engine was submitted
        self._waiting: dict[str, deque[float]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.failed: dict[str, str] = {}
        self.overrides_path = overrides_path
        self.overrides = load_overrides(overrides_path) if overrides_path else {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="distillwatch-engine")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def pending(self) -> dict[str, int]:
        """Exchanges per account waiting for the engine."""
        return {acct: len(times) for acct, times in self._waiting.items()}

    def submit(self, exchange: Exchange) -> None:
        """Queue a finished exchange for the engine (never blocks the request)."""
        now = time.perf_counter()
        waiting = self._waiting.get(exchange.account_id)
        if waiting is None:
            waiting = self._waiting[exchange.account_id] = deque()
        waiting.append(now)
        self._idle.clear()
        self._queue.append((exchange, now))
        self._wake.set()

    @property
    def depth(self) -> int:
        """Exchanges waiting for the engine."""
        return len(self._queue)

    async def drain(self) -> None:
        """Wait until every exchange submitted so far has been observed (the task runs)."""
        await self._idle.wait()

    async def _run(self) -> None:
        """Observe in turns: each turn takes what is queued for up to ``slice_s``, then lets
        requests run; it keeps going past the slice while the oldest exchange waiting has
        waited more than half the budget, so under overload the engine takes time from
        requests instead of falling further behind (its lag stays bounded)."""
        catch_up = self.budget_s / 2
        queue = self._queue
        while True:
            await self._wake.wait()
            self._wake.clear()
            turn_started = time.perf_counter()
            while queue:
                self._observe_queued(*queue.popleft())
                if not queue:
                    break
                now = time.perf_counter()
                if now - turn_started > self.slice_s and now - queue[0][1] <= catch_up:
                    await asyncio.sleep(0)  # let requests run between turns
                    turn_started = time.perf_counter()
            self._idle.set()

    def _observe_queued(self, exchange: Exchange, submitted: float) -> None:
        self.observe_now(exchange)
        waiting = self._waiting[exchange.account_id]
        waiting.popleft()
        if not waiting:
            del self._waiting[exchange.account_id]
        if self.on_lag is not None:
            self.on_lag(time.perf_counter() - submitted)

    def observe_now(self, exchange: Exchange) -> None:
        """Observe one exchange (time clamped to be monotonic); record failures per account."""
        acct = exchange.account_id
        last = self.engine.last_t
        if last is not None and exchange.ts.timestamp() < last:
            exchange = msgspec.structs.replace(exchange, ts=to_datetime(last))
        started = time.perf_counter()
        ok = True
        try:
            self.engine.observe(exchange)
            self.failed.pop(acct, None)
        except Exception as e:  # any engine bug must not take the gateway down
            ok = False
            self.failed[acct] = f"{type(e).__name__}: {e}"
            log.exception("engine failed on account %s", acct)
        finally:
            if self.on_observe is not None:
                self.on_observe(time.perf_counter() - started, ok)

    async def current(self, account_id: str) -> Enforcement:
        """The action for this account's next request (never waits; see :meth:`decision`)."""
        return self.decision(account_id)

    def decision(self, account_id: str) -> Enforcement:
        """The action for this account's next request: its override, else the engine's last
        decision, unless the engine failed on it or lags more than the budget behind it."""
        override = self.overrides.get(account_id)
        if override is not None:
            return Enforcement(override.action, "override", f"override: {override.reason}")
        waiting = self._waiting.get(account_id)
        if waiting and time.perf_counter() - waiting[0] > self.budget_s:
            return self._fallback(account_id, "decision over budget")
        if account_id in self.failed:
            return self._fallback(account_id, "engine error")
        st = self.engine.states.get(account_id)
        if st is None or st.decision is None:
            return Enforcement(Action.ALLOW, "engine", "no exchanges yet")
        return Enforcement(st.decision.action, "engine", st.decision.rule)

    def _fallback(self, account_id: str, why: str) -> Enforcement:
        if self.on_error == "closed":
            return Enforcement(Action.BLOCK, "fail-closed", why)
        st = self.engine.states.get(account_id)
        action = st.decision.action if st is not None and st.decision is not None else Action.ALLOW
        return Enforcement(action, "fail-open", why)

    # operator actions (the admin API)

    def override(self, account_id: str, action: Action, reason: str) -> None:
        self.overrides[account_id] = Override(action, reason, time.time())
        self._save()

    def clear_override(self, account_id: str) -> bool:
        removed = self.overrides.pop(account_id, None) is not None
        self._save()
        return removed

    def _save(self) -> None:
        if self.overrides_path is not None:
            save_overrides(self.overrides_path, self.overrides)

    def reload_policy(self, policy: Policy) -> int:
        """Swap the policy and re-decide every known account now; return how many."""
        self.engine.policy = policy
        t = self.engine.last_t or time.time()
        for st in self.engine.states.values():
            st.decision = self.engine.decide(st, t)
        return len(self.engine.states)

    def verdict(self, account_id: str) -> Verdict | None:
        """The account's verdict as of the last exchange observed (None if never seen)."""
        st = self.engine.states.get(account_id)
        if st is None:
            return None
        return self.engine.verdict(st, self.engine.last_t or time.time())
