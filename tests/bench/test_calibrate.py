"""``distillwatch bench calibrate`` end to end at a tiny scale: four models, two operating points.

This checks the file's shape and that the engine loads it, not that the weights are good
(the detection benchmark measures that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillwatch.bench.calibrate import KINDS, PRIOR_GRID
from distillwatch.cli.main import app
from distillwatch.detect.scoring import LogOddsScorer


def test_calibrate_fits_a_model_per_kind_of_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILLWATCH_DATA", "")  # the packaged sample, wherever this runs
    out = tmp_path / "combiner.json"
    args = ["bench", "calibrate", "--scenarios", "demo", "--scale", "0.2"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cal"), "--write", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc["models"]) == set(KINDS)
    signup = set(doc["account_signals"])
    assert "signup.account_age" in signup
    for name, model in doc["models"].items():
        assert all(w >= 0 for w in model["weights"].values()), name
        if name.endswith("-noaccounts"):  # fitted on replays without the accounts table
            assert not signup & set(model["weights"]), name
        if name.startswith("metadata"):
            assert not set(doc["text_signals"]) & set(model["weights"]), name
        assert model["prior"] in PRIOR_GRID
    # one operating point per pair: with sign-up metadata, and without it
    assert doc["models"]["full"]["prior"] == doc["models"]["metadata"]["prior"] == doc["prior"]
    assert (
        doc["models"]["full-noaccounts"]["prior"] == doc["models"]["metadata-noaccounts"]["prior"]
    )
    assert set(doc["operating_curve_dev"]) == set(KINDS)
    scorer = LogOddsScorer.load(out)
    assert scorer.full_noaccounts is not scorer.full
    assert "weight (full-noaccounts)" in result.output
