"""Stages import only shared modules and earlier stages (the data-flow rule)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "distillwatch"
SHARED = {"records", "errors", "config", "clock", "yamlfile", "__init__"}
ORDER = [
    "log", "store", "signals", "testing", "detect", "policy",
    "attribute", "respond", "gateway", "share", "prove", "bench", "cli",
]  # fmt: skip


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] == "distillwatch"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(rel.parts), path))
    return out


def test_every_stage_is_known() -> None:
    stages = {_stage(m) for m, _ in _modules()}
    assert stages <= SHARED | set(ORDER) | {"__main__"}, stages - SHARED - set(ORDER)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda x: str(x))
def test_imports_flow_with_the_data(module: str, path: Path) -> None:
    own = _stage(module)
    for imported in _imports(path):
        stage = _stage(imported)
        if stage in SHARED:
            continue
        if own in SHARED and own != "__init__":
            pytest.fail(f"{module}: shared module imports stage {stage}")
        if own in ORDER:
            assert ORDER.index(stage) <= ORDER.index(own), (
                f"{module} ({own}) imports {imported} ({stage}), a later stage"
            )
