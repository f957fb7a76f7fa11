"""Path parameter checks shared by the services."""
from __future__ import annotations

import re

from app.errors import BadRequest

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_uid(value: str) -> bool:
    """A UID as PS3.5 9.1 defines it: dot-separated numbers without leading zeros, 64 characters at most."""
    return bool(value) and len(value) <= 64 and bool(_UID.match(value))


def require_uid(value: str, name: str) -> str:
    if not is_uid(value):
        raise BadRequest(f"{name} {value[:80]!r} is not a valid UID")
    return value
