"""The policy stage: default policy, decisions, tier overrides, load errors, hash."""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from typing import Any

import pytest

import distillwatch.policy.decide as decide_module
from distillwatch.errors import ConfigError, PolicyError
from distillwatch.policy import DEFAULT_POLICY_PATH, Policy, load_policy, policy_from_mapping
from distillwatch.records import Action, PolicyRef

BASE = """\
name: test
version: 3
thresholds:
  monitor: 0.5
  throttle: 0.8
  protect: 0.9
  block: 0.97
min_exchanges: 20
tiers:
  enterprise:
    thresholds:
      throttle: 0.9
      protect: 0.95
      block: 0.99
    min_exchanges: 100
  research:
    thresholds: {throttle: 0.9, protect: 0.95, block: 0.99}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> PolicyError:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    error = info.value
    assert "\n" not in str(error)
    assert str(error).startswith(f"{path}"), str(error)
    return error


def mapping(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "m",
        "version": 1,
        "thresholds": {"monitor": 0.5, "throttle": 0.8, "protect": 0.9, "block": 0.97},
        "min_exchanges": 20,
    }
    data.update(changes)
    return data


# -- the shipped default ---------------------------------------------------------------


def test_default_policy_loads() -> None:
    policy = load_policy()
    assert isinstance(policy, Policy)
    assert (policy.name, policy.version, policy.source) == ("default", 1, "<default>")
    assert re.fullmatch(r"[0-9a-f]{16}", policy.hash)
    assert DEFAULT_POLICY_PATH.name == "default.yaml"
    assert "enterprise" in DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def test_default_file_loads_by_path_with_same_hash(tmp_path: Path) -> None:
    copy = write(tmp_path, DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    assert load_policy(copy).hash == load_policy().hash


@pytest.mark.parametrize(
    ("score", "action", "rule"),
    [
        (0.0, Action.ALLOW, "below-thresholds"),
        (0.3, Action.ALLOW, "below-thresholds"),
        (0.4999, Action.ALLOW, "below-thresholds"),
        (0.5, Action.MONITOR, "thresholds.monitor"),
        (0.79, Action.MONITOR, "thresholds.monitor"),
        (0.8, Action.THROTTLE, "thresholds.throttle"),
        (0.9, Action.PROTECT, "thresholds.protect"),
        (0.97, Action.BLOCK, "thresholds.block"),
        (1.0, Action.BLOCK, "thresholds.block"),
    ],
)
def test_default_decides_across_score_range(score: float, action: Action, rule: str) -> None:
    assert load_policy().decide(score, tier=None, exchanges=1000) == (action, rule)


def test_default_actions_never_weaken_as_score_rises() -> None:
    policy = load_policy()
    for tier in (None, "enterprise", "research", "free"):
        ranks = [policy.decide(i / 1000, tier=tier, exchanges=10_000)[0].rank for i in range(1001)]
        assert ranks == sorted(ranks)
        assert ranks[0] == Action.ALLOW.rank
        assert ranks[-1] == Action.BLOCK.rank


# -- decisions ----------------------------------------------------------------------------


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write(tmp_path, BASE))


def test_tier_overrides(policy: Policy) -> None:
    assert policy.decide(0.85, tier=None, exchanges=500) == (Action.THROTTLE, "thresholds.throttle")
    assert policy.decide(0.85, tier="enterprise", exchanges=500) == (
        Action.MONITOR,
        "thresholds.monitor",
    )
    assert policy.decide(0.92, tier="enterprise", exchanges=500) == (
        Action.THROTTLE,
        "tiers.enterprise.thresholds.throttle",
    )
    assert policy.decide(0.995, tier="research", exchanges=500) == (
        Action.BLOCK,
        "tiers.research.thresholds.block",
    )
    assert policy.thresholds("enterprise") == {
        "monitor": 0.5,
        "throttle": 0.9,
        "protect": 0.95,
        "block": 0.99,
    }


def test_unknown_tier_falls_back_to_top_level(policy: Policy) -> None:
    for tier in ("free", "", None):
        assert policy.decide(0.92, tier=tier, exchanges=500) == (
            Action.PROTECT,
            "thresholds.protect",
        )
    assert policy.thresholds("free") == policy.thresholds()


def test_min_exchanges_caps_at_monitor(policy: Policy) -> None:
    assert policy.decide(0.99, tier=None, exchanges=19) == (Action.MONITOR, "min_exchanges")
    assert policy.decide(0.99, tier=None, exchanges=20) == (Action.BLOCK, "thresholds.block")
    # a score that only reaches monitor keeps the threshold's own rule
    assert policy.decide(0.6, tier=None, exchanges=0) == (Action.MONITOR, "thresholds.monitor")
    # ALLOW stays ALLOW
    assert policy.decide(0.1, tier=None, exchanges=0) == (Action.ALLOW, "below-thresholds")


def test_min_exchanges_tier_override(policy: Policy) -> None:
    assert policy.decide(0.995, tier="enterprise", exchanges=50) == (
        Action.MONITOR,
        "tiers.enterprise.min_exchanges",
    )
    assert policy.decide(0.995, tier="enterprise", exchanges=100)[0] is Action.BLOCK
    # research sets no min_exchanges: the top level's 20 applies
    assert policy.decide(0.995, tier="research", exchanges=19) == (Action.MONITOR, "min_exchanges")


def test_equal_thresholds_pick_the_stronger_action() -> None:
    data = mapping(thresholds={"monitor": 0.5, "throttle": 0.9, "protect": 0.9, "block": 0.9})
    policy = policy_from_mapping(data)
    assert policy.decide(0.9, tier=None, exchanges=100) == (Action.BLOCK, "thresholds.block")


def test_decide_docstring_examples() -> None:
    result = doctest.testmod(decide_module, raise_on_error=False, verbose=False)
    assert result.attempted >= 3
    assert result.failed == 0


def test_nan_score_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="NaN"):
        policy.decide(float("nan"), tier=None, exchanges=100)


def test_ref(policy: Policy) -> None:
    assert policy.ref("thresholds.block") == PolicyRef(
        name="test", version=3, hash=policy.hash, rule="thresholds.block"
    )


def test_policy_from_mapping_defaults() -> None:
    data = mapping()
    del data["min_exchanges"]
    policy = policy_from_mapping(data, source="gateway")
    assert policy.source == "gateway"
    assert policy.decide(0.99, tier=None, exchanges=0) == (Action.BLOCK, "thresholds.block")


# -- load errors: one line, file, line number, dotted key -------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE + "colour: red\n")
    assert (error.line, error.key) == (18, "colour")
    assert str(error).endswith("`colour`: unknown key")


def test_unknown_nested_key_in_tier(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("      throttle: 0.9\n", "      throttl: 0.9\n"))
    assert (error.line, error.key) == (12, "tiers.enterprise.thresholds.throttl")
    assert ":12: `tiers.enterprise.thresholds.throttl`: unknown key" in str(error)
    assert "did you mean `throttle`?" in str(error)


def test_unknown_key_in_flow_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("{throttle: 0.9,", "{throttle: 0.9, warn: 0.1,"))
    assert (error.line, error.key) == (17, "tiers.research.thresholds.warn")


def test_threshold_above_one(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("block: 0.97", "block: 1.7"))
    assert (error.line, error.key) == (7, "thresholds.block")
    assert str(error) == f"{tmp_path / 'policy.yaml'}:7: `thresholds.block`: must be ≤ 1 (got 1.7)"


def test_negative_threshold(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("monitor: 0.5", "monitor: -0.1"))
    assert (error.line, error.key) == (4, "thresholds.monitor")
    assert "must be ≥ 0 (got -0.1)" in str(error)


def test_negative_min_exchanges_in_tier(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("min_exchanges: 100", "min_exchanges: -5"))
    assert (error.line, error.key) == (15, "tiers.enterprise.min_exchanges")
    assert "must be ≥ 0 (got -5)" in str(error)


@pytest.mark.parametrize("value", ['"0.8"', "high", "yes", "[0.8]"])
def test_string_where_number_expected(tmp_path: Path, value: str) -> None:
    error = load_error(tmp_path, BASE.replace("throttle: 0.8", f"throttle: {value}"))
    assert (error.line, error.key) == (5, "thresholds.throttle")
    assert "must be a number" in str(error)


def test_float_where_count_expected(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("min_exchanges: 20", "min_exchanges: 2.5"))
    assert (error.line, error.key) == (8, "min_exchanges")
    assert "must be a whole number (got 2.5)" in str(error)


def test_non_monotone_top_level(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("protect: 0.9\n", "protect: 0.7\n"))
    assert (error.line, error.key) == (6, "thresholds.protect")
    assert "must be ≥ `thresholds.throttle` (0.8) (got 0.7)" in str(error)


def test_non_monotone_after_tier_merge(tmp_path: Path) -> None:
    # both sides of the broken pair are the tier's own: blame the stronger level
    text = BASE.replace("      throttle: 0.9\n", "      throttle: 0.96\n")
    error = load_error(tmp_path, text)
    assert (error.line, error.key) == (13, "tiers.enterprise.thresholds.protect")
    assert "must be ≥ `tiers.enterprise.thresholds.throttle` (0.96)" in str(error)


def test_non_monotone_only_after_merge(tmp_path: Path) -> None:
    # the tier's own values are ordered; merged with the top level's protect 0.9 they are not
    text = BASE + "  free:\n    thresholds:\n      throttle: 0.95\n"
    error = load_error(tmp_path, text)
    assert (error.line, error.key) == (20, "tiers.free.thresholds.throttle")
    assert "must be ≤ `thresholds.protect` (0.9) (got 0.95)" in str(error)


def test_missing_required_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("  block: 0.97\n", ""))
    assert (error.line, error.key) == (3, "thresholds.block")
    assert "missing required key" in str(error)


def test_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    text = BASE.replace("version: 3", "version: x").replace("block: 0.99", "block: 2", 1)
    error = load_error(tmp_path, text)
    assert (error.line, error.key) == (2, "version")
    assert str(error).endswith("(and 1 more problem)")


def test_duplicate_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("  block: 0.97\n", "  block: 0.97\n  block: 0.5\n"))
    assert (error.line, error.key) == (8, "thresholds.block")
    assert "duplicate key (first at line 7)" in str(error)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, BASE.replace("  protect: 0.9\n", "  protect: [0.9\n"))
    assert error.line is not None and 6 <= error.line <= 7
    assert "invalid YAML" in str(error)


def test_yaml_syntax_error_bad_indent(tmp_path: Path) -> None:
    error = load_error(tmp_path, "name: x\nversion: 1\n  thresholds: 3\n")
    assert error.line == 3
    assert "invalid YAML: mapping values are not allowed here" in str(error)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert error.reason == "policy file is empty"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: policy file not found"


def test_directory_is_not_a_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"name: x\nversion: \xff\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.line == 2


def test_top_level_list(tmp_path: Path) -> None:
    error = load_error(tmp_path, "# a list\n- name: x\n- version: 1\n")
    assert error.line == 2
    assert "top level must be a mapping of keys (got a list)" in str(error)


def test_top_level_scalar(tmp_path: Path) -> None:
    error = load_error(tmp_path, "just words\n")
    assert "got the scalar 'just words'" in str(error)


def test_policy_error_is_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        policy_from_mapping(mapping(colour="red"), source="reload")
    assert str(info.value) == "reload: `colour`: unknown key"


def test_mapping_errors_name_key_without_line() -> None:
    bad = mapping(tiers={"enterprise": {"thresholds": {"block": 1.5}}})
    with pytest.raises(PolicyError) as info:
        policy_from_mapping(bad)
    assert str(info.value) == (
        "<mapping>: `tiers.enterprise.thresholds.block`: must be ≤ 1 (got 1.5)"
    )


# -- hash ---------------------------------------------------------------------------------


def test_hash_stable_across_order_comments_whitespace(tmp_path: Path) -> None:
    reordered = """\
# same policy, shuffled and commented
tiers:
  research: {thresholds: {block: 0.99, protect: 0.95, throttle: 0.90}}
  enterprise:
    min_exchanges: 100   # contracted customers
    thresholds: {block: 0.99, throttle: 0.9, protect: 0.950}


min_exchanges: 20
thresholds: {block: 0.97, protect: 0.9, throttle: 0.80, monitor: 0.5}
version: 3
name: test
"""
    first = load_policy(write(tmp_path, BASE, "a.yaml"))
    second = load_policy(write(tmp_path, reordered, "b.yaml"))
    assert first.hash == second.hash
    data = mapping(
        name="test",
        version=3,
        tiers={
            "enterprise": {
                "thresholds": {"throttle": 0.9, "protect": 0.95, "block": 0.99},
                "min_exchanges": 100,
            },
            "research": {"thresholds": {"throttle": 0.9, "protect": 0.95, "block": 0.99}},
        },
    )
    assert policy_from_mapping(data).hash == first.hash


def test_hash_changes_with_any_value(tmp_path: Path) -> None:
    base = load_policy(write(tmp_path, BASE, "a.yaml")).hash
    for old, new in [
        ("0.97", "0.96"),
        ("version: 3", "version: 4"),
        ("min_exchanges: 100", "min_exchanges: 99"),
    ]:
        changed = load_policy(write(tmp_path, BASE.replace(old, new), "b.yaml"))
        assert changed.hash != base, (old, new)


# -- campaign_min_exchanges ------------------------------------------------------------


def test_campaign_min_exchanges_lets_linked_accounts_be_acted_on_sooner() -> None:
    policy = policy_from_mapping(mapping(campaign_min_exchanges=3))
    assert policy.decide(0.99, tier=None, exchanges=3) == (Action.MONITOR, "min_exchanges")
    assert policy.decide(0.99, tier=None, exchanges=3, campaign=True) == (
        Action.BLOCK,
        "thresholds.block",
    )
    assert policy.decide(0.99, tier=None, exchanges=2, campaign=True) == (
        Action.MONITOR,
        "campaign_min_exchanges",
    )
    # never later than the policy's own minimum
    late = policy_from_mapping(mapping(min_exchanges=2, campaign_min_exchanges=10))
    assert late.decide(0.99, tier=None, exchanges=2, campaign=True)[0] is Action.BLOCK


def test_campaign_min_exchanges_unset_changes_nothing() -> None:
    plain = policy_from_mapping(mapping())
    assert plain.decide(0.99, tier=None, exchanges=3, campaign=True) == (
        Action.MONITOR,
        "min_exchanges",
    )
    assert policy_from_mapping(mapping(campaign_min_exchanges=None)).hash == plain.hash
    assert policy_from_mapping(mapping(campaign_min_exchanges=3)).hash != plain.hash


@pytest.mark.parametrize("value", [-1, 2.5, "3"])
def test_campaign_min_exchanges_is_validated(value: object) -> None:
    with pytest.raises(PolicyError, match="campaign_min_exchanges"):
        policy_from_mapping(mapping(campaign_min_exchanges=value))
