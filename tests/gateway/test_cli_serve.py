"""``distillwatch serve``: bad input is a one-line error and exit 2, before any port opens."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from distillwatch.cli.main import app

runner = CliRunner()


def test_serve_rejects_a_bad_upstream() -> None:
    r = runner.invoke(app, ["serve", "--upstream", "localhost:8000"])
    assert r.exit_code == 2
    assert "`upstream`: must be an http:// or https:// URL" in r.output


def test_serve_needs_a_keys_file(tmp_path: Path) -> None:
    r = runner.invoke(app, ["serve", "--upstream", "http://127.0.0.1:9/v1"])
    assert r.exit_code == 2 and "no API keys: set `keys` (a file) or `keys_store`" in r.output
    r = runner.invoke(
        app, ["serve", "--upstream", "http://127.0.0.1:9/v1", "--keys", str(tmp_path / "k.yaml")]
    )
    assert r.exit_code == 2 and "keys file not found" in r.output


def test_serve_reports_config_errors_with_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("upstream: http://u/v1\nmax_body_bytes: -5\n", encoding="utf-8")
    r = runner.invoke(app, ["serve", "--config", str(cfg)])
    assert r.exit_code == 2
    assert "gw.yaml: `max_body_bytes`" in " ".join(r.output.split())
