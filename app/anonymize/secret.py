"""The key of the consistent UID / pseudonym / date-offset mapping (setting app:anonymizerUidSecret).

Without a configured value, a random key is generated once and kept in App_Data/anonymizer.key, so the
same original UID maps to the same new UID after a restart. Several worker processes starting at once agree
on one key: the file is written under a temporary name and linked into place only if it does not exist yet.
Losing the key (or changing the setting) means new uploads of old studies get other UIDs.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_FILE_NAME = "anonymizer.key"


def resolve_uid_secret(configured: str, data_directory: Path) -> bytes:
    if configured:
        return configured.encode("utf-8")
    path = Path(data_directory) / KEY_FILE_NAME
    existing = _read(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(temporary, path)        # atomic; fails when another process got there first
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    key = _read(path)
    if not key:
        raise OSError(f"{path}: the anonymizer key file is empty")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_text(encoding="ascii").strip().encode("ascii")
    except FileNotFoundError:
        return b""
