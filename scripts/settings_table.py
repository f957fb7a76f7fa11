"""Print the README's settings table from app/config/settings.py (the one place keys are declared)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config.settings import SETTINGS, environment_names  # noqa: E402

TYPES = {"_parse_bool": "bool", "_parse_int": "int", "_parse_str": "string"}


def table() -> str:
    lines = ["| key (web.config `<appSettings>`) | type | default | environment (Linux App Service) | meaning |",
             "|---|---|---|---|---|"]
    for setting in SETTINGS:
        cell = lambda text: text.replace("|", "\\|")  # noqa: E731  (markdown cell escaping)
        kind = TYPES[setting.parse.__name__]
        default = f"`{cell(setting.default)}`" if setting.default else "(empty)"
        env = f"`{environment_names(setting.key)[1]}`"
        lines.append(f"| `{setting.key}` | {kind} | {default} | {env} | {cell(setting.doc)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
