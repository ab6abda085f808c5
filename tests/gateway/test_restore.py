"""A restarted gateway remembers: its engine is rebuilt from its own log before serving."""

from __future__ import annotations

from pathlib import Path

from distillwatch.records import Action
from distillwatch.store import open_store
from tests.gateway.conftest import ALICE, GatewayFactory
from tests.gateway.policies import fixed_app
from tests.gateway.test_enforcement import chat


def test_a_blocked_account_stays_blocked_after_a_restart(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    log = {"dir": str(tmp_path / "shared-log")}
    first = start_gateway(app_factory=fixed_app(Action.BLOCK), log=log)
    assert chat(first).status_code == 200  # no decision yet; afterwards: block
    second = start_gateway(app_factory=fixed_app(Action.BLOCK), log=log)
    assert chat(second).status_code == 403  # the first request of the new process


def test_restore_can_be_turned_off(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    log = {"dir": str(tmp_path / "shared-log")}
    first = start_gateway(app_factory=fixed_app(Action.BLOCK), log=log)
    assert chat(first).status_code == 200
    second = start_gateway(app_factory=fixed_app(Action.BLOCK), log=log, engine={"restore": False})
    assert chat(second).status_code == 200


def test_event_store_log_and_restore(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'events.duckdb'}"
    first = start_gateway(app_factory=fixed_app(Action.BLOCK), log={"store": url})
    assert [chat(first).status_code, chat(first, key=ALICE).status_code] == [200, 403]
    start_gateway.stop(first)  # it holds the DuckDB file: stop it before the second opens it
    with open_store(url) as store:
        assert sorted(e.status or 0 for e in next(store.iter_exchanges())) == [200, 403]
    second = start_gateway(app_factory=fixed_app(Action.BLOCK), log={"store": url})
    assert chat(second).status_code == 403
