"""Operators' overrides (allow-list / appeal granted, force block), kept across restarts.

Stored as one small JSON file, replaced atomically (write, fsync, rename) on every change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from distillwatch.errors import ConfigError
from distillwatch.records import Action

OVERRIDE_ACTIONS = {"allow": Action.ALLOW, "block": Action.BLOCK}


@dataclass(frozen=True)
class Override:
    action: Action
    reason: str
    at: float


def load_overrides(path: Path) -> dict[str, Override]:
    """The overrides in ``path`` (none if it does not exist); a bad file is a ``ConfigError``."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            account: Override(OVERRIDE_ACTIONS[o["action"]], str(o["reason"]), float(o["at"]))
            for account, o in data.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"unreadable overrides file: {e}", source=path) from None


def save_overrides(path: Path, overrides: dict[str, Override]) -> None:
    """Replace ``path`` atomically with ``overrides``."""
    data = {
        account: {"action": o.action.value, "reason": o.reason, "at": o.at}
        for account, o in sorted(overrides.items())
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
