"""Repository tooling checks: the import-linter architecture contracts in setup.cfg hold."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _lint_imports_command() -> list[str]:
    # Prefer the console script next to the running interpreter (.venv/bin), then PATH.
    script = Path(sys.executable).parent / "lint-imports"
    if script.is_file():
        return [str(script)]
    found = shutil.which("lint-imports")
    if found:
        return [found]
    pytest.skip("lint-imports console script not found")


def test_import_contracts_are_kept():
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install -r requirements-dev.txt)")
    env = dict(os.environ)
    # The root package `app` must be importable from the repository root.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        # --no-cache: do not leave an .import_linter_cache directory in the checkout.
        [*_lint_imports_command(), "--no-cache", "--no-logo", str(REPO / "setup.cfg")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
