"""The shared YAML-file machinery: duplicate keys, lines of keys and values, how values read,
pydantic errors as one located line, and the loaders that use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from distillwatch.bench.scenario import scenario_from_text
from distillwatch.errors import ConfigError, DistillwatchError, PolicyError
from distillwatch.policy.loader import policy_from_text
from distillwatch.share.actors import actors_from_text
from distillwatch.yamlfile import (
    compose,
    construct,
    did_you_mean,
    dotted,
    locate,
    reject_duplicate_keys,
    show,
    validation_error,
    where,
)


def node_of(text: str) -> yaml.Node:
    node = compose(text, "f.yaml", ConfigError)
    assert node is not None
    return node


class PlainError(Exception):
    """An error class that takes one string, as ``IntelError`` does."""


def plain_error(
    message: str, /, *, source: str, line: int | None = None, key: str | None = None
) -> PlainError:
    return PlainError(f"{where(source, line, key)}: {message}")


# --- duplicate keys -------------------------------------------------------------------------


def test_duplicate_key_is_reported_at_the_second_occurrence() -> None:
    node = node_of("a: 1\nb:\n  - c: 1\n    d: 2\n    c: 3\n")
    with pytest.raises(ConfigError) as info:
        reject_duplicate_keys(node, "f.yaml", ConfigError)
    assert str(info.value) == "f.yaml:5: `b.0.c`: duplicate key (first at line 3)"
    assert (info.value.line, info.value.key) == (5, "b.0.c")


def test_duplicate_keys_with_a_factory_and_no_duplicates() -> None:
    with pytest.raises(PlainError, match=r"^f\.yaml:3: `a`: duplicate key \(first at line 1\)$"):
        reject_duplicate_keys(node_of("a: 1\nb: 2\na: 3\n"), "f.yaml", plain_error)
    reject_duplicate_keys(node_of("a: {x: 1}\nb: {x: 1}\nc: [{x: 1}, {x: 1}]\n"), "f", plain_error)


def test_merge_keys_may_repeat_only_when_asked() -> None:
    text = "base: &b {x: 1}\nother: &o {y: 2}\nc:\n  <<: *b\n  <<: *o\n"
    with pytest.raises(ConfigError, match=r"f:5: `c.<<`: duplicate key \(first at line 4\)"):
        reject_duplicate_keys(node_of(text), "f", ConfigError)
    reject_duplicate_keys(node_of(text), "f", ConfigError, merge_keys=True)


# --- locate, dotted -------------------------------------------------------------------------

NESTED = """\
top: 1
outer:
  inner:
    - first
    - key:
        deep: 5
  list: [a, b]
  value:
    on_next_line
"""


@pytest.mark.parametrize(
    ("loc", "key", "line"),
    [
        ((), False, 1),
        (("top",), False, 1),
        (("outer",), True, 2),
        (("outer",), False, 3),  # the value (a mapping) starts on the next line
        (("outer", "inner", 0), False, 4),
        (("outer", "inner", 1, "key", "deep"), False, 6),
        (("outer", "inner", 1, "key", "deep"), True, 6),
        (("outer", "inner", 1, "key"), True, 5),
        (("outer", "list", 1), False, 7),
        (("outer", "value"), True, 8),
        (("outer", "value"), False, 9),
        # as far down as it exists: the deepest key found
        (("outer", "inner", 7), False, 3),  # an index out of range
        (("outer", "nope", "x"), False, 2),  # a missing key
        (("outer", "inner", "x"), False, 3),  # a key into a list
        (("top", "x"), False, 1),  # below a scalar: the scalar
        (("outer", "[key]", "inner"), False, 2),  # a bad mapping key: stops at its key
    ],
)
def test_locate_into_nested_mappings_and_sequences(
    loc: tuple[int | str, ...], key: bool, line: int
) -> None:
    assert locate(node_of(NESTED), loc, key=key) == line


def test_locate_without_a_tree_and_dotted() -> None:
    assert locate(None, ("a",)) is None
    # pydantic's `[key]` marks a bad key; it is never looked up as a key of that name
    assert locate(node_of("a:\n  '[key]': 1\n"), ("a", "[key]")) == 1
    assert dotted(("a", 0, "[key]", "b")) == "a.0.b"
    assert dotted(()) == ""


# --- show, where, did_you_mean --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        ({"a": 1}, "a mapping"),
        ([1, 2], "a list"),
        ("x", "'x'"),
        ("y" * 40, repr("y" * 40)),
        ("y" * 41, repr("y" * 37 + "...")),
        (3, "3"),
        (1.0, "1.0"),
        ((1, 2), "(1, 2)"),
        ({1, 2}, "{1, 2}"),
    ],
)
def test_show_each_type(value: Any, shown: str) -> None:
    assert show(value) == shown


def test_show_leaves_other_values_to_the_scalar_hook_on_one_line() -> None:
    assert show(1.0, lambda v: "one") == "one"
    assert show(True, lambda v: "hook") == "true"  # bool is never a scalar for the hook
    assert show(object(), lambda v: "two\n   lines") == "two lines"


def test_where_and_did_you_mean() -> None:
    assert where("f") == "f"
    assert where("f", 3) == "f:3"
    assert where("f", 3, "a.b") == "f:3: `a.b`"
    assert where("f", None, "a") == "f: `a`"
    assert str(ConfigError("m", source="f", line=3, key="a.b")) == f"{where('f', 3, 'a.b')}: m"
    assert did_you_mean("thresold", ["threshold", "tiers"]) == " (did you mean `threshold`?)"
    assert did_you_mean("zzz", ["threshold"]) == ""


# --- compose, construct ---------------------------------------------------------------------


def test_compose_names_the_line_and_the_context_on_request() -> None:
    assert compose("", "f", ConfigError) is None
    with pytest.raises(ConfigError) as info:
        compose("a: 1\nb: [1, 2\n", "f", ConfigError)
    message = str(info.value)
    assert message.startswith("f:3: invalid YAML: expected ',' or ']'")
    assert "while parsing" not in message
    with pytest.raises(PlainError, match=r"^f:3: not YAML: .*\(while parsing a flow sequence\)$"):
        compose("a: 1\nb: [1, 2\n", "f", plain_error, label="not YAML", context=True)


def test_construct_gives_data_or_a_located_error() -> None:
    assert construct(node_of("a: [1, x]\n"), "f", ConfigError) == {"a": [1, "x"]}
    node = node_of("a: 1\nb: !foo x\n")
    with pytest.raises(ConfigError, match=r"^f:2: invalid YAML: could not .* tag '!foo'$"):
        construct(node, "f", ConfigError)
    with pytest.raises(ConfigError) as info:
        construct(node, "f", ConfigError, lines=False)
    assert info.value.line is None
    assert "line 2, column 4" in str(info.value)  # PyYAML's own text says where


def test_a_value_its_tag_cannot_take_is_an_error_not_a_traceback() -> None:
    with pytest.raises(ConfigError, match=r"^f: invalid YAML: a value does not fit its tag"):
        construct(node_of("a: !!int abc\n"), "f", ConfigError)


# --- validation_error -----------------------------------------------------------------------


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    name: str


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Inner]


def _validation(data: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return info.value


def _kind(err: ErrorDetails) -> str:
    return str(err["type"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # n (line 5) comes before extra (line 6)
        (
            "items:\n  - n: 1\n    name: a\n  - name: b\n    n: x\n    extra: 1\n",
            "f:5: `items.1.n`: int_parsing (and 1 more problem)",
        ),
        # an unknown key is blamed at its key (its value is on line 6); the missing key at
        # line 2 comes last
        (
            "items:\n  - name: a\n  - n: 1\n    name: b\n    nmae:\n      x\n",
            "f:5: `items.1.nmae`: extra_forbidden (and 1 more problem)",
        ),
        (
            "items:\n  - {n: 1}\n  - {n: 2}\n  - {}\n",
            "f:2: `items.0.name`: missing (and 3 more problems)",
        ),
    ],
)
def test_validation_error_names_the_first_problem_in_file_order(text: str, message: str) -> None:
    node = node_of(text)
    exc = _validation(construct(node, "f", ConfigError))
    error = validation_error(exc, "f", ConfigError, node=node, describe=_kind)
    assert str(error) == message


def test_validation_error_with_a_prefix_a_factory_and_no_tree() -> None:
    node = node_of("wrapper:\n  items:\n    - n: 1\n      name: [a]\n")
    data = construct(node, "f", ConfigError)["wrapper"]
    describe: Callable[[ErrorDetails], str] = lambda err: f"bad {show(err['input'])}"  # noqa: E731
    error = validation_error(
        _validation(data), "f", plain_error, node=node, describe=describe, prefix=("wrapper",)
    )
    assert isinstance(error, PlainError)
    assert str(error) == "f:4: `wrapper.items.0.name`: bad a list"
    bare = validation_error(
        _validation({"items": [{}]}), "f", ConfigError, node=None, describe=_kind
    )
    assert str(bare) == "f: `items.0.n`: missing (and 1 more problem)"
    assert bare.line is None


# --- the loaders that use it ----------------------------------------------------------------

LOADERS: list[Callable[[str, str], object]] = [
    policy_from_text,
    scenario_from_text,
    actors_from_text,
]


@pytest.mark.parametrize("load", LOADERS, ids=["policy", "scenario", "actors"])
@pytest.mark.parametrize("value", ["!foo x", "!!int abc", "!!timestamp 2026-13-45"])
def test_every_loader_refuses_a_bad_tag_in_one_line(
    load: Callable[[str, str], object], value: str
) -> None:
    with pytest.raises(DistillwatchError) as info:
        load(f"name: {value}\n", "f.yaml")
    message = str(info.value)
    assert message.startswith("f.yaml") and "\n" not in message
    assert "YAML" in message


def test_policy_keeps_its_wording() -> None:
    with pytest.raises(PolicyError) as info:
        policy_from_text("version: 1\nversion: 2\n", "p.yaml")
    assert str(info.value) == "p.yaml:2: `version`: duplicate key (first at line 1)"
