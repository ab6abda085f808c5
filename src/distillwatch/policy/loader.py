"""Loading a policy file: YAML → validated model → :class:`Policy`, or one-line PolicyError.

The YAML is composed into a node tree first so every validation error can be mapped back
to the line of the offending key or value, e.g.
``policy.yaml:4: `thresholds.block`: must be ≤ 1 (got 1.7)``.
"""

from __future__ import annotations

import difflib
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

#: The policy that ships with the package (read it with ``.read_text()``; copy it to start).
DEFAULT_POLICY_PATH: Final[Traversable] = resources.files("distillwatch.policy").joinpath(
    "default.yaml"
)
DEFAULT_SOURCE: Final = "<default>"

Loc = tuple[int | str, ...]


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the shipped default.

    Raises :class:`PolicyError` (one line: file, line, dotted key, reason) on any problem.
    """
    if path is None:
        return policy_from_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), DEFAULT_SOURCE)
    return policy_from_text(_read(Path(path)), str(path))


def policy_from_text(text: str, source: str = "<text>") -> Policy:
    """Build a policy from YAML text; errors name ``source`` and the line."""
    node = _compose(text, source)
    if node is None or node.tag == "tag:yaml.org,2002:null":
        raise PolicyError("policy file is empty", source=source)
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(
            f"top level must be a mapping of keys (got {_node_kind(node)})",
            source=source,
            line=_line(node),
        )
    _reject_duplicate_keys(node, (), source)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    return _build(data, source, node)


def policy_from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> Policy:
    """Build a policy from already-parsed data (tests, the gateway's reload); no line numbers."""
    if not isinstance(data, Mapping):
        raise PolicyError(f"top level must be a mapping of keys (got {_show(data)})", source=source)
    return _build(dict(data), source, None)


def _build(data: Any, source: str, node: yaml.Node | None) -> Policy:
    try:
        model = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, source, node) from None
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


def _compose(text: str, source: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def _yaml_error(exc: yaml.YAMLError, source: str) -> PolicyError:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        what = exc.problem or "syntax error"
        if exc.context:
            what = f"{what} ({exc.context})"
        return PolicyError(
            f"invalid YAML: {_one_line(what)}", source=source, line=exc.problem_mark.line + 1
        )
    return PolicyError(f"invalid YAML: {_one_line(str(exc))}", source=source)


def _reject_duplicate_keys(node: yaml.Node, path: tuple[str, ...], source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; a policy must not."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                name = str(key.value)
                if name in seen:
                    raise PolicyError(
                        f"duplicate key (first at line {seen[name]})",
                        source=source,
                        line=_line(key),
                        key=".".join((*path, name)),
                    )
                seen[name] = _line(key)
                _reject_duplicate_keys(value, (*path, name), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, (*path, str(i)), source)


def _validation_error(exc: ValidationError, source: str, node: yaml.Node | None) -> PolicyError:
    """The first problem in file order, as a PolicyError.

    A missing key is reported only when no key is unknown: a misspelt key explains the
    missing one, and "did you mean" is the more useful message.
    """
    errors = exc.errors(include_url=False)
    located = [(_locate(node, err), i, err) for i, err in enumerate(errors)]
    located.sort(
        key=lambda item: (item[2]["type"] == "missing", item[0] is None, item[0] or 0, item[1])
    )
    line, _, err = located[0]
    message = _describe(err)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return PolicyError(message, source=source, line=line, key=_dotted(err["loc"]) or None)


def _locate(node: yaml.Node | None, err: ErrorDetails) -> int | None:
    """Line of the key (unknown/missing key) or value (bad value) that ``err`` is about."""
    if node is None:
        return None
    line = _line(node)
    loc = err["loc"]
    for i, part in enumerate(loc):
        if part == "[key]":
            break
        if isinstance(node, yaml.MappingNode):
            pair = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and str(k.value) == str(part)
                ),
                None,
            )
            if pair is None:
                break
            key, node = pair
            last = i == len(loc) - 1
            line = _line(key) if (not last or err["type"] == "extra_forbidden") else _line(node)
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            node = node.value[part]
            line = _line(node)
        else:
            break
    return line


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
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return "unknown key" + (f" (did you mean `{close[0]}`?)" if close else "")
    if kind == "missing":
        return _MESSAGES[kind]
    if kind == "less_than_equal":
        message = f"must be ≤ {number(ctx['le'])}"
    elif kind == "greater_than_equal":
        message = f"must be ≥ {number(ctx['ge'])}"
    elif kind in _MESSAGES:
        message = _MESSAGES[kind]
    else:
        text = _one_line(err["msg"])
        message = text[:1].lower() + text[1:]
    return f"{message} (got {_show(err['input'])})"


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


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return number(value)
    return _one_line(repr(value))


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the scalar {_one_line(str(node.value))!r}"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _one_line(text: str) -> str:
    return " ".join(text.split())
