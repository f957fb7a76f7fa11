"""The README documents every setting exactly as app/config/settings.py declares it."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_readme_settings_table_is_current():
    table = subprocess.run([sys.executable, "scripts/settings_table.py"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.strip()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert table in readme, "README settings table is stale: paste the output of scripts/settings_table.py"


def test_readme_names_the_two_commands_and_ci_uses_the_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "scripts/serve\n" in readme and "scripts/test\n" in readme
    assert "exec scripts/test" in (REPO / ".ci" / "run").read_text()
