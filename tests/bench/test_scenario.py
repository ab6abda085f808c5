"""Scenario files: packaged ones load, and every mistake is a ConfigError with file and line."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from distillwatch.bench.profiles import PROFILES
from distillwatch.bench.scenario import knob_model, load_scenario, packaged_scenarios
from distillwatch.errors import ConfigError

GOOD = """\
name: tiny
start: 2026-03-02T00:00:00Z
days: 1
release_after_days: 0.5
populations:
  - profile: chat
    count: 5
    knobs: {sessions_per_day: 3}
  - profile: cot-harvest-hydra
    name: hydra-a
    count: 4
    knobs:
      ip_strategy: sticky-residential
      timing: diurnal
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_scenarios_load() -> None:
    assert {"default", "demo", "evasive"} <= set(packaged_scenarios())
    for name in packaged_scenarios():
        sc = load_scenario(name)
        assert sc.name == name and sc.populations
    default = load_scenario("default")
    profiles = {p.profile for p in default.populations}
    assert profiles == set(PROFILES)  # the benchmark's mix has every profile
    hydra = next(p for p in default.populations if p.profile == "cot-harvest-hydra")
    assert hydra.count >= 100


def test_a_file_loads_with_names_and_knobs(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, GOOD))
    assert sc.name == "tiny" and sc.days == 1.0 and sc.release_after_days == 0.5
    chat, hydra = sc.populations
    assert chat.label == "chat" and chat.knobs == {"sessions_per_day": 3.0}
    assert hydra.label == "hydra-a"
    assert hydra.knobs == {"ip_strategy": "sticky-residential", "timing": "diurnal"}
    assert load_scenario(str(_write(tmp_path, GOOD))) == sc


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "message"),
    [
        ("days: 1\n", "days: 1\ncolour: red\n", 4, "colour", "unknown key"),
        ("days: 1\n", "dayz: 1\n", 3, "dayz", "did you mean `days`"),
        ("profile: chat", "profile: chatter", 6, "populations.0.profile", "unknown profile"),
        ("{sessions_per_day: 3}", "{sessions: 3}", 8, "populations.0.knobs.sessions",
         "did you mean `sessions_per_day`"),
        ("{sessions_per_day: 3}", "{sessions_per_day: -1}", 8,
         "populations.0.knobs.sessions_per_day", "greater than 0"),
        ("{sessions_per_day: 3}", "{sessions_per_day: many}", 8,
         "populations.0.knobs.sessions_per_day", "'many'"),
        ("timing: diurnal", "timing: sometimes", 14, "populations.1.knobs.timing",
         "'steady', 'bursty' or 'diurnal'"),
        ("count: 4", "count: 4.5", 11, "populations.1.count", "integer"),
        ("count: 5", "count: -5", 7, "populations.0.count", "greater than or equal to 0"),
        ("release_after_days: 0.5", "release_after_days: 2", 4, "release_after_days", "≤ days"),
        ("name: hydra-a\n", "name: chat\n", 10, "populations.1.name", "used twice"),
        ("days: 1\n", "days: 1\ndays: 2\n", 4, "days", "duplicate key"),
        ("start: 2026-03-02T00:00:00Z", "start: 2026-03-02T00:00:00", 2, "start", "timezone"),
        ("    count: 5\n", "    count: [5\n", 8, None, "invalid YAML"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, key: str | None, message: str
) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    e = err.value
    assert e.source == str(path)
    assert message in str(e)
    assert e.line == line, str(e)
    assert e.key == key


def test_missing_keys_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`populations`: missing required key"):
        load_scenario(_write(tmp_path, GOOD.split("populations:")[0]))
    with pytest.raises(ConfigError, match="empty"):
        load_scenario(_write(tmp_path, ""))
    with pytest.raises(ConfigError, match="mapping"):
        load_scenario(_write(tmp_path, "- a\n- b\n"))


def test_unknown_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"packaged: .*default"):
        load_scenario("no-such-scenario")
    with pytest.raises(ConfigError, match="not found"):
        load_scenario(tmp_path / "missing.yaml")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_documents_and_types_its_knobs(profile: str) -> None:
    p = PROFILES[profile]
    doc = inspect.getdoc(p.build) or ""
    assert len(doc.splitlines()) >= 3, "a docstring: the behaviour and its real-world basis"
    model = knob_model(profile)
    assert set(model.model_fields) == set(p.knobs())
    assert model.model_validate({}).model_dump() == p.knobs()  # the defaults are valid
    for name in p.knobs():
        assert model.model_fields[name].annotation is not None, name
