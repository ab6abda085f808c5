"""``distillwatch bench detect`` end to end at a tiny scale: metrics computed, report written.

This checks that every system is replayed and scored, not that the numbers are good.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillwatch.bench.run import SYSTEMS
from distillwatch.cli.main import app


def test_bench_detect_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILLWATCH_DATA", "")  # the packaged sample, wherever this runs
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench"
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nprose stays\n")
    args = ["bench", "detect", "--scenario", "demo", "--scale", "0.15", "--days", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--record", str(doc)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report" / "metrics.json").read_text())
    systems = {m["system"]: m for m in report["systems"]}
    assert tuple(systems) == SYSTEMS  # every system, in order (the CLI's default is all)
    assert "distillwatch-no-accounts" in systems
    for m in systems.values():
        assert m["legit_accounts"] > 0 and m["attack_accounts"] > 0
        assert 0.0 <= m["fpr"] <= 1.0 and 0.0 <= m["recall"] <= 1.0
        assert m["leakage"] is not None and 0.0 <= m["leakage"] <= 1.0
        assert {p["profile"] for p in m["profiles"]}
    html = (out / "report" / "report.html").read_text()
    assert "<svg" in html
    assert "<h2>Campaigns</h2>" in html  # distillwatch's campaigns, drawn (or "none detected")
    assert html.count('<section id="camp_') == html.count("<h2>Campaign <code>")
    text = doc.read_text()
    assert "prose stays" in text and "<!-- bench_detect:begin -->" in text
    assert "| distillwatch |" in text


def test_bench_detect_rejects_unknown_system(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "detect", "--systems", "distillwatch,oracle", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "oracle" in result.output and "Traceback" not in result.output
