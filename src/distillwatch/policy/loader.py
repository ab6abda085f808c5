"""Loading a policy file: YAML → validated model → :class:`Policy`, or one-line PolicyError.

The YAML is composed into a node tree first so every validation error can be mapped back
to the line of the offending key or value, e.g.
``policy.yaml:4: `thresholds.block`: must be ≤ 1 (got 1.7)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from distillwatch.errors import PolicyError
from distillwatch.policy.decide import Policy
from distillwatch.policy.schema import PolicyFile, number
from distillwatch.yamlfile import (
    Loc,
    compose,
    construct,
    did_you_mean,
    line_of,
    one_line,
    reject_duplicate_keys,
    show,
    validation_error,
)

#: The policy that ships with the package (read it with ``.read_text()``; copy it to start).
DEFAULT_POLICY_PATH: Final[Traversable] = resources.files("distillwatch.policy").joinpath(
    "default.yaml"
)
DEFAULT_SOURCE: Final = "<default>"


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the shipped default.

    Raises :class:`PolicyError` (one line: file, line, dotted key, reason) on any problem.
    """
    if path is None:
        return policy_from_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), DEFAULT_SOURCE)
    return policy_from_text(_read(Path(path)), str(path))


def policy_from_text(text: str, source: str = "<text>") -> Policy:
    """Build a policy from YAML text; errors name ``source`` and the line."""
    node = compose(text, source, PolicyError, context=True)
    if node is None or node.tag == "tag:yaml.org,2002:null":
        raise PolicyError("policy file is empty", source=source)
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(
            f"top level must be a mapping of keys (got {_node_kind(node)})",
            source=source,
            line=line_of(node),
        )
    reject_duplicate_keys(node, source, PolicyError, merge_keys=True)
    return _build(construct(node, source, PolicyError, context=True), source, node)


def policy_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Policy:
    """Build a policy from already-parsed data (tests, the gateway's reload); no line numbers."""
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"top level must be a mapping of keys (got {show(data, _scalar)})", source=source
        )
    return _build(dict(data), source, None)


def _build(data: Any, source: str, node: yaml.Node | None) -> Policy:
    try:
        model = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source, PolicyError, node=node, describe=_describe) from None
    return Policy(model, source=source)


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError("policy file not found", source=path) from None
    except IsADirectoryError:
        raise PolicyError("is a directory, not a policy file", source=path) from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror or exc}", source=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PolicyError("not UTF-8 text", source=path, line=line) from None


_MESSAGES: Final = {
    "missing": "missing required key",
    "float_type": "must be a number",
    "int_type": "must be a whole number",
    "string_type": "must be a string",
    "model_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of keys",
    "string_too_short": "must not be empty",
    "finite_number": "must be a finite number",
}


def _describe(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        loc = err["loc"]
        return "unknown key" + did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))
    if kind == "missing":
        return _MESSAGES[kind]
    if kind == "less_than_equal":
        message = f"must be ≤ {number(ctx['le'])}"
    elif kind == "greater_than_equal":
        message = f"must be ≥ {number(ctx['ge'])}"
    elif kind in _MESSAGES:
        message = _MESSAGES[kind]
    else:
        text = one_line(err["msg"])
        message = text[:1].lower() + text[1:]
    return f"{message} (got {show(err['input'], _scalar)})"


def _fields_at(loc: Loc) -> list[str]:
    """Keys allowed at ``loc`` in the schema (for 'did you mean' hints)."""
    tp: Any = PolicyFile
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return []
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _scalar(value: Any) -> str:
    """What ``show`` leaves to the policy: other mappings and tuples (``policy_from_mapping``
    takes any Python data), numbers as users write them, the rest as Python writes it."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, tuple):
        return "a list"
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return number(value)
    return repr(value)


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the scalar {one_line(str(node.value))!r}"
