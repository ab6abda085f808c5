"""The report of ``bench detect``: three files, readable markdown, a self-contained HTML page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from distillwatch.bench.metrics import CurvePoint, Metrics, evaluate, leakage_curve, roc_points
from distillwatch.bench.report import (
    MissingDependencyError,
    ReportPaths,
    load_report,
    write_report,
)
from distillwatch.errors import DistillwatchError
from distillwatch.records import Verdict
from tests.bench.test_metrics import ACTIVITY, LABELS, VERDICTS, verdict
from tests.factories import exchange

META = {
    "scenario": "demo",
    "split": "test",
    "seed": 7,
    "scale": 0.5,
    "exchanges": 12345,
    "legit_accounts": 5,
    "attack_accounts": 5,
    "machine": "test box <x86_64>",
    "date": "2026-11-23",
    "seconds": {"generate": 3.2, "distillwatch": 125.0},
}


def _systems() -> dict[str, list[Verdict]]:
    weak = [verdict(v.account_id, v.score / 2) for v in VERDICTS]  # acts on nobody
    return {"distillwatch": VERDICTS, "rate-limit <&> | pipe": weak}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportPaths, list[Metrics]]:
    out = tmp_path_factory.mktemp("report")
    systems = _systems()
    metrics = [evaluate(v, LABELS, ACTIVITY, system=s) for s, v in systems.items()]
    roc = {s: roc_points(v, LABELS, ACTIVITY) for s, v in systems.items()}
    log = [
        exchange(i, account=a, seconds=i * 900)
        for i, a in enumerate(["A1", "A2", "A3", "A1", "A4", "L1", "A5", "A2"] * 3)
    ]
    curves = leakage_curve([log], VERDICTS, LABELS)
    paths = write_report(out / "nested", metrics, curves, roc, META)
    return paths, metrics


def test_files_exist(report: tuple[ReportPaths, list[Metrics]]) -> None:
    paths, _ = report
    for p in (paths.json, paths.markdown, paths.html):
        assert p.is_file() and p.stat().st_size > 0
    assert paths.json.name == "metrics.json"
    assert paths.markdown.name == "report.md"
    assert paths.html.name == "report.html"


def test_json_round_trips(report: tuple[ReportPaths, list[Metrics]]) -> None:
    paths, metrics = report
    doc = load_report(paths.json)
    assert doc.systems == metrics
    assert doc.meta == META
    assert set(doc.roc) == {"distillwatch", "rate-limit <&> | pipe"}
    assert doc.curves_system == "distillwatch"
    assert set(doc.leakage_curves) == {"c1", "c2", "c3", "solo:A4"}
    raw = msgspec.json.decode(paths.json.read_bytes())
    assert raw["systems"][0]["system"] == "distillwatch"


def test_markdown_compares_systems_and_profiles(report: tuple[ReportPaths, list[Metrics]]) -> None:
    paths, _ = report
    md = paths.markdown.read_text(encoding="utf-8")
    assert md.startswith("## Detection")
    assert "scenario `demo`" in md and "12,345 exchanges" in md and "2.1 min" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    # one row per profile in each per-profile table (every table has the same column count)
    for profile in ("chat", "developer", "hydra", "scraper"):
        assert any(r.startswith(f"| {profile} |") for r in rows), profile
    assert sum(r.startswith("| hydra |") for r in rows) == 2  # recall and leakage tables
    overall = next(r for r in rows if r.startswith("| distillwatch |"))
    assert "20.0 % (1/5)" in overall and "0.700" in overall and "72.7 %" in overall
    # the pipe in a system name is escaped, so the table keeps its columns
    header = next(r for r in rows if r.startswith("| profile | accounts |"))
    assert "rate-limit &lt;&&gt; \\| pipe" in header
    assert "<x86_64>" not in md  # markdown would take it for an HTML tag
    for block in md.split("\n\n"):
        lines = [x for x in block.splitlines() if x.startswith("|")]
        widths = {len(re.split(r"(?<!\\)\|", x)) for x in lines}
        assert len(widths) <= 1, block
    for title in ("Overall", "False-positive rate per legitimate profile", "Campaigns"):
        assert f"### {title}" in md
    assert "Recall per attack profile" in md and "Leakage per attack profile" in md
    assert "### Coverage" in md  # missing verdicts are reported


def test_html_is_self_contained(report: tuple[ReportPaths, list[Metrics]]) -> None:
    paths, _ = report
    page = paths.html.read_text(encoding="utf-8")
    assert page.count("<svg") == 2  # ROC and leakage
    assert "http://" not in page and "https://" not in page
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert links and all(x.startswith("#") for x in links)  # in-document references only
    assert "<script" not in page
    assert "rate-limit &lt;&amp;&gt; | pipe" in page
    assert "test box &lt;x86_64&gt;" in page
    assert "<x86_64>" not in page
    assert "hydra" in page and "solo:A4" in page


def test_report_without_curves_or_roc(tmp_path: Path) -> None:
    m = evaluate(VERDICTS, LABELS, ACTIVITY, system="only")
    paths = write_report(tmp_path, [m], None, None, {})
    page = paths.html.read_text(encoding="utf-8")
    assert "<svg" not in page and "No ROC curve" in page
    assert load_report(paths.json).leakage_curves == {}
    assert "| only |" in paths.markdown.read_text(encoding="utf-8")


def test_many_campaigns_stay_out_of_the_markdown(tmp_path: Path) -> None:
    from distillwatch.bench.metrics import Activity
    from tests.bench.test_metrics import act, attack, legit

    labels = {f"a{i}": attack(f"a{i}", "hydra", None) for i in range(40)}
    labels["l"] = legit("l", "chat")
    active: dict[str, Activity] = {a: act(3) for a in labels}
    m = evaluate([], labels, active, system="none")
    md = write_report(tmp_path, [m], None, None, {}).markdown.read_text(encoding="utf-8")
    assert "40 campaigns: see `report.html`" in md
    assert "solo:a1 " not in md


def test_missing_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    m = evaluate(VERDICTS, LABELS, ACTIVITY, system="x")
    with pytest.raises(MissingDependencyError, match=r"pip install 'distillwatch\[bench\]'") as e:
        write_report(tmp_path / "r", [m], None, None, {})
    assert isinstance(e.value, DistillwatchError)
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_importing_the_report_is_cheap() -> None:
    code = (
        "import sys, distillwatch.bench.report, distillwatch.bench.metrics; "
        "heavy = [m for m in ('matplotlib', 'sklearn', 'scipy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_small_campaigns_are_summed_in_the_plot() -> None:
    from distillwatch.bench.report_html import MAX_PLOTTED_CAMPAIGNS, leakage_svg

    axis = [f"2026-03-01T0{h}:00:00.000Z" for h in range(3)]
    curves: dict[str, list[CurvePoint]] = {
        f"camp-{i:02d}": [(t, (k + 1) * (i + 1), k * i) for k, t in enumerate(axis)]
        for i in range(MAX_PLOTTED_CAMPAIGNS + 5)
    }
    svg = leakage_svg(curves, "distillwatch")
    assert svg is not None and svg.startswith("<svg")
    assert "5 other campaigns" in svg and "camp-14" in svg and "camp-04" not in svg
    assert leakage_svg({}, "distillwatch") is None


def test_the_report_is_reproducible(tmp_path: Path) -> None:
    m = evaluate(VERDICTS, LABELS, ACTIVITY, system="x")
    roc = {"x": roc_points(VERDICTS, LABELS, ACTIVITY)}
    a = write_report(tmp_path / "a", [m], None, roc, META)
    b = write_report(tmp_path / "b", [m], None, roc, META)
    for pa, pb in ((a.json, b.json), (a.markdown, b.markdown), (a.html, b.html)):
        assert pa.read_bytes() == pb.read_bytes()
