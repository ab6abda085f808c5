"""schemathesis against the gateway's own OpenAPI description: every check passes.

Among them ``not_a_server_error`` (no 5xx), status codes and bodies as documented, and
schema-invalid requests refused / schema-valid ones accepted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.conftest import ALICE, Running

pytestmark = pytest.mark.slow


def test_schemathesis_finds_no_failure(gateway: Running, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install 'distillwatch[dev]')")
    r = subprocess.run(
        [cli, "run", gateway.url + "/openapi.json", "--url", gateway.url,
         "--checks", "all", "--max-examples", "25", "--seed", "20261123",
         "--header", f"Authorization: Bearer {ALICE}", "--no-color"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # its cache folder goes there, not into the checkout
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "No issues found" in r.stdout
