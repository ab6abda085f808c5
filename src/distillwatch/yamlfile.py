"""YAML files validated with pydantic, every problem one line naming ``file:line`` and the key.

The text is composed into a node tree first (``compose``), so that duplicate keys can be
refused (``reject_duplicate_keys``: PyYAML keeps the last one silently) and every validation
error can be mapped back to the line of the offending key or value (``locate``,
``validation_error``). What differs between files — the error class, the wording of each
pydantic error — comes from the caller: an :class:`ErrorFactory` (``ConfigError`` and its
subclasses are one as they are) and a ``describe`` hook.

>>> from distillwatch.errors import ConfigError
>>> node = compose("a:\\n  b: [1, x]\\n", "f.yaml", ConfigError)
>>> locate(node, ("a", "b", 1)), dotted(("a", "b", 1)), show([1]), show("x")
(2, 'a.b.1', 'a list', "'x'")
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = [
    "ErrorFactory",
    "Loc",
    "compose",
    "construct",
    "did_you_mean",
    "dotted",
    "line_of",
    "locate",
    "one_line",
    "reject_duplicate_keys",
    "show",
    "validation_error",
    "where",
]

Loc = tuple[int | str, ...]
"""Where a value is: keys and list indices from the top (pydantic's ``loc``)."""

E_co = TypeVar("E_co", bound=Exception, covariant=True)
E = TypeVar("E", bound=Exception)

_MERGE: Final = "tag:yaml.org,2002:merge"


class ErrorFactory(Protocol[E_co]):
    """Makes a caller's error from a one-line ``message`` about ``source``, at ``line`` and
    ``key`` where known. ``ConfigError`` and its subclasses are error factories."""

    def __call__(
        self, message: str, /, *, source: str, line: int | None = None, key: str | None = None
    ) -> E_co: ...


def where(source: str, line: int | None = None, key: str | None = None) -> str:
    """``source:line: `key``` (the parts that are known), as ``ConfigError`` prefixes its text."""
    at = source if line is None else f"{source}:{line}"
    return f"{at}: `{key}`" if key else at


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, as one space."""
    return " ".join(text.split())


def line_of(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


def compose(
    text: str,
    source: str,
    error: ErrorFactory[Exception],
    *,
    label: str = "invalid YAML",
    context: bool = False,
) -> yaml.Node | None:
    """The node tree of ``text`` (``None`` when it holds no document).

    Bad YAML raises ``error("{label}: {problem}")`` at the problem's line; ``context`` adds
    PyYAML's context, e.g. ``(while parsing a flow sequence)``.
    """
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, error, label=label, context=context) from None


def construct(
    node: yaml.Node,
    source: str,
    error: ErrorFactory[Exception],
    *,
    label: str = "invalid YAML",
    context: bool = False,
    lines: bool = True,
) -> Any:
    """The Python data of a composed tree (safe tags only); errors as in :func:`compose`.

    ``lines=False`` reports a construction error with PyYAML's own text (which says where)
    instead of the line. A value its explicit tag cannot take (``!!int abc``) is an error too.
    """
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        if not lines:
            raise error(f"{label}: {one_line(str(exc))}", source=source) from None
        raise _yaml_error(exc, source, error, label=label, context=context) from None
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        why = one_line(str(exc)) or type(exc).__name__
        raise error(f"{label}: a value does not fit its tag ({why})", source=source) from None
    finally:
        loader.dispose()


def _yaml_error(
    exc: yaml.YAMLError, source: str, error: ErrorFactory[E], *, label: str, context: bool
) -> E:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        what = exc.problem or "syntax error"
        if context and exc.context:
            what = f"{what} ({exc.context})"
        return error(f"{label}: {one_line(what)}", source=source, line=exc.problem_mark.line + 1)
    return error(f"{label}: {one_line(str(exc))}", source=source)


def reject_duplicate_keys(
    node: yaml.Node, source: str, error: ErrorFactory[Exception], *, merge_keys: bool = False
) -> None:
    """Raise ``error`` at the second of two equal keys of a mapping, anywhere in the tree.

    PyYAML keeps the last one silently. Only plain (scalar) keys are compared; with
    ``merge_keys``, ``<<`` is YAML's merge key (it may repeat, its value is not walked).
    """
    _duplicates(node, (), source, error, merge_keys)


def _duplicates(
    node: yaml.Node, path: Loc, source: str, error: ErrorFactory[Exception], merge_keys: bool
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or (merge_keys and key.tag == _MERGE):
                continue
            name = str(key.value)
            if name in seen:
                raise error(
                    f"duplicate key (first at line {seen[name]})",
                    source=source,
                    line=line_of(key),
                    key=dotted((*path, name)),
                )
            seen[name] = line_of(key)
            _duplicates(value, (*path, name), source, error, merge_keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, (*path, i), source, error, merge_keys)


def locate(node: yaml.Node | None, loc: Loc, *, key: bool = False) -> int | None:
    """The line of what ``loc`` points at, as far down as it exists (``None`` without a tree).

    The last step names the key's line with ``key`` (an unknown key), else the value's; a
    pydantic ``[key]`` step (a bad mapping key) stops at the key.
    """
    if node is None:
        return None
    line = line_of(node)
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
            name, node = pair
            line = line_of(name if key or i < len(loc) - 1 else node)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = line_of(node)
        else:
            break
    return line


def dotted(loc: Loc) -> str:
    """``loc`` as a dotted key, ``a.b.0.c`` (pydantic's ``[key]`` steps left out)."""
    return ".".join(str(part) for part in loc if part != "[key]")


def show(value: Any, scalar: Callable[[Any], str] = str) -> str:
    """A bad value as a message quotes it: ``null``, ``true``, ``'text'`` (cut at 40
    characters), ``a mapping`` (a dict), ``a list`` (a list); anything else as ``scalar``
    writes it, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return one_line(scalar(value))


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for the closest of ``known`` to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def validation_error(
    exc: ValidationError,
    source: str,
    error: ErrorFactory[E],
    *,
    node: yaml.Node | None,
    describe: Callable[[ErrorDetails], str],
    prefix: Loc = (),
) -> E:
    """The first problem of ``exc`` in file order, as ``error`` with its line and dotted key.

    ``describe`` words one pydantic error; ``prefix`` is where the validated data sits in the
    file. A missing key comes last (a misspelt key explains it, and says "did you mean"), and
    the count of the other problems is appended.
    """
    errors = exc.errors(include_url=False)
    found = []
    for i, err in enumerate(errors):
        loc = (*prefix, *err["loc"])
        line = locate(node, loc, key=err["type"] == "extra_forbidden")
        found.append((err["type"] == "missing", line or 0, i, loc, err))
    _, line, _, loc, err = min(found, key=lambda f: f[:3])
    message = describe(err)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error(message, source=source, line=line or None, key=dotted(loc) or None)
