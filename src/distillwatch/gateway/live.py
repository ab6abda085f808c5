"""The engine, live: exchanges in off the request path, decisions out before forwarding.

Finished exchanges are queued to one observer task that feeds ``Engine.observe`` in the
order they finish (their times clamped so the engine never sees time run backwards). A new
request reads its account's current decision; if that account still has exchanges waiting
to be observed, it waits for them up to the decision budget. When the engine has failed on
the account, or the budget runs out, ``on_error`` decides: ``open`` serves on the last
decision, ``closed`` refuses (503). Operators' overrides (allow-list, force block) win over
everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
        on_observe: Callable[[float, bool], None] | None = None,
        overrides_path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.on_error = on_error
        self.budget_s = budget_s
        self.on_observe = on_observe
        self.queue: asyncio.Queue[Exchange] = asyncio.Queue()
        self.pending: dict[str, int] = {}
        self._caught_up: dict[str, asyncio.Event] = {}
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

    def submit(self, exchange: Exchange) -> None:
        """Queue a finished exchange for the engine (never blocks the request)."""
        acct = exchange.account_id
        self.pending[acct] = self.pending.get(acct, 0) + 1
        self.queue.put_nowait(exchange)

    async def _run(self) -> None:
        while True:
            exchange = await self.queue.get()
            self.observe_now(exchange)
            if self.queue.qsize():  # let requests run between observations of a backlog
                await asyncio.sleep(0)

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
            left = self.pending.get(acct, 1) - 1
            if left > 0:
                self.pending[acct] = left
            else:
                self.pending.pop(acct, None)
                event = self._caught_up.pop(acct, None)
                if event is not None:
                    event.set()

    async def current(self, account_id: str) -> Enforcement:
        """The action for this account's next request."""
        override = self.overrides.get(account_id)
        if override is not None:
            return Enforcement(override.action, "override", f"override: {override.reason}")
        if self.pending.get(account_id):
            event = self._caught_up.setdefault(account_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), self.budget_s)
            except TimeoutError:
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
