"""One place that turns failures into a one-line message and an exit code — never a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from distillwatch.errors import DistillwatchError

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_INVALID_INPUT) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: distillwatch errors → message + exit 2; bugs → message + exit 70."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except DistillwatchError as e:
            raise fail(_escape(str(e))) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except Exception as e:
            if os.environ.get("DISTILLWATCH_DEBUG"):
                raise
            raise fail(
                f"internal error: {type(e).__name__}: {_escape(str(e))} "
                "(set DISTILLWATCH_DEBUG=1 for a traceback and please report it)",
                EXIT_INTERNAL,
            ) from None

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text.replace("\n", " "))


def is_tty() -> bool:
    return sys.stderr.isatty()
