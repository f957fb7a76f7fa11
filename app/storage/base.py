"""The storage interface every backend implements (filesystem now, Azure Blob behind the same methods)."""
from __future__ import annotations

import uuid
from typing import BinaryIO, Iterator, Protocol, runtime_checkable

from app.errors import StorageError

CHUNK_SIZE = 256 * 1024


def new_key() -> str:
    """A fresh blob key: random, fanned out over 256 folders, with no client data in it."""
    token = uuid.uuid4().hex
    return f"{token[:2]}/{token}.dcm"


def key_parts(key: str) -> list[str]:
    """The ``/``-separated parts of a valid key; StorageError for a key no backend may accept.

    Refused everywhere (so a key means the same on every backend): empty keys and parts, ``.`` and ``..``,
    a leading or trailing ``/``, backslashes and colons (drive letters, alternate data streams).
    """
    parts = key.split("/") if isinstance(key, str) else [""]
    if not key or any(p in ("", ".", "..") or "\\" in p or ":" in p for p in parts):
        raise StorageError(f"invalid blob key {key!r}")
    return parts


@runtime_checkable
class BlobStorage(Protocol):
    name: str
    """Short backend name reported by /health, e.g. ``filesystem``."""

    def put_file(self, key: str, source_path: str, *, move: bool = False, durable: bool = True) -> int:
        """Store the file at ``source_path`` under ``key`` atomically; return its size.

        ``move`` lets a backend take the file over (a rename) instead of copying it. Either the whole
        blob is visible under ``key`` afterwards or nothing is. With ``durable`` the blob survives a
        crash once this returns; ``durable=False`` may return earlier, and the caller must ``sync`` the
        key before it relies on that (before an index row refers to it), so that many blobs are made
        durable together.
        """

    def sync(self, keys) -> None:
        """Make the blobs of ``keys`` put with ``durable=False`` durable; StorageError if that fails."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary file object over the whole blob (caller closes it)."""

    def iter_range(self, key: str, start: int = 0, length: int | None = None,
                   chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes ``[start, start+length)`` in chunks, without reading the rest of the blob."""

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``start``, in one read (raises StorageError when the blob is
        shorter)."""

    def size(self, key: str) -> int:
        ...

    def exists(self, key: str) -> bool:
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""

    def check(self) -> None:
        """Raise StorageError unless the backend is reachable and writable (used by /health)."""
