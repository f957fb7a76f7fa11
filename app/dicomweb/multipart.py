"""Streaming multipart/related (RFC 2387 / RFC 2046) reader and writer.

The reader never holds a part in memory: each body is written to a temporary file as it arrives, so a
2 GB upload costs a few chunk buffers. A body that does not end with the closing delimiter is a 400, never
a silent partial success.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

from app.errors import BadRequest

READ_SIZE = 256 * 1024


@dataclass
class Part:
    headers: dict[str, str]          # lower-case names
    path: str                        # temporary file holding the body
    size: int
    index: int                       # 0-based position in the request
    extra: dict = field(default_factory=dict)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def content_location(self) -> str | None:
        return self.headers.get("content-location")

    @property
    def content_id(self) -> str | None:
        return self.headers.get("content-id")

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _Reader:
    """A byte stream with a lookahead buffer."""

    def __init__(self, stream: BinaryIO, limit: int = 0):
        self.stream = stream
        self.buffer = bytearray()
        self.eof = False
        self.total = 0
        self.limit = limit

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(READ_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.total += len(chunk)
        if self.limit and self.total > self.limit:
            from app.errors import PayloadTooLarge
            raise PayloadTooLarge(f"request body exceeds the limit of {self.limit} bytes "
                                  "(stow:maxRequestBytes)")
        self.buffer += chunk
        return True


def iter_parts(stream: BinaryIO, boundary: str, temp_dir: str, *, max_header_bytes: int = 65536,
               max_body_bytes: int = 0) -> Iterator[Part]:
    """Yield the parts of a multipart body one at a time, each spooled to a file in ``temp_dir``.

    The caller owns each yielded part's file (call ``part.discard()``). Raises BadRequest when the body
    is malformed or truncated.
    """
    if not boundary or len(boundary) > 200:
        raise BadRequest("multipart boundary is missing or longer than 200 characters")
    reader = _Reader(stream, max_body_bytes)
    delimiter = b"--" + boundary.encode("latin-1")
    # The first delimiter may start the body or follow a preamble after a CRLF.
    reader.buffer += b"\r\n"
    separator = b"\r\n" + delimiter
    position = _find(reader, separator, 0)
    if position < 0:
        raise BadRequest("multipart body does not contain the boundary declared in Content-Type")
    del reader.buffer[:position + len(separator)]
    index = 0
    while True:
        # After a delimiter: "--" closes the body, otherwise optional whitespace then CRLF.
        while len(reader.buffer) < 2 and reader.fill():
            pass
        if reader.buffer[:2] == b"--":
            return
        end_of_line = _find(reader, b"\r\n", 0, max_scan=1024)
        if end_of_line < 0 or reader.buffer[:end_of_line].strip(b" \t"):
            raise BadRequest("malformed multipart delimiter line")
        del reader.buffer[:end_of_line + 2]
        headers = _read_headers(reader, max_header_bytes)
        fd, path = tempfile.mkstemp(prefix="part-", suffix=".tmp", dir=temp_dir)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                keep = len(separator) - 1
                while True:
                    found = reader.buffer.find(separator)
                    if found >= 0:
                        out.write(reader.buffer[:found])
                        size += found
                        del reader.buffer[:found + len(separator)]
                        break
                    if len(reader.buffer) > keep:
                        flush = len(reader.buffer) - keep
                        out.write(reader.buffer[:flush])
                        size += flush
                        del reader.buffer[:flush]
                    if not reader.fill():
                        raise BadRequest(f"multipart body ends inside part {index + 1}: "
                                         "the closing boundary is missing (truncated upload?)")
        except BaseException:
            os.unlink(path)
            raise
        yield Part(headers=headers, path=path, size=size, index=index)
        index += 1


def _find(reader: _Reader, needle: bytes, start: int, max_scan: int | None = None) -> int:
    while True:
        found = reader.buffer.find(needle, start)
        if found >= 0:
            # The limit must not depend on how much one read happened to bring in.
            return found if max_scan is None or found <= max_scan else -1
        if max_scan is not None and len(reader.buffer) >= max_scan + len(needle):
            return -1
        start = max(0, len(reader.buffer) - len(needle) + 1)
        if not reader.fill():
            return -1
        if max_scan is None and len(reader.buffer) > 64 * 1024 * 1024:
            # Scanning for the first boundary: a preamble this long is not a DICOMweb request.
            return -1


def _read_headers(reader: _Reader, max_header_bytes: int) -> dict[str, str]:
    while len(reader.buffer) < 2 and reader.fill():
        pass
    if reader.buffer[:2] == b"\r\n":          # a part with no headers at all
        del reader.buffer[:2]
        return {}
    end = _find(reader, b"\r\n\r\n", 0, max_scan=max_header_bytes)
    if end < 0:
        raise BadRequest("multipart part headers are missing their blank line or exceed "
                         f"{max_header_bytes} bytes")
    block = bytes(reader.buffer[:end]).decode("latin-1")
    del reader.buffer[:end + 4]
    headers: dict[str, str] = {}
    name = None
    for line in block.split("\r\n"):
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()     # folded header line
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(f"malformed multipart part header line {line[:80]!r}")
        name = name.strip().lower()
        headers[name] = value.strip()
    return headers


def new_boundary() -> str:
    return "dicomcloud-" + uuid.uuid4().hex


def part_header(boundary: str, headers: dict[str, str]) -> bytes:
    lines = [f"--{boundary}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def write_multipart(boundary: str,
                    parts: Iterable[tuple[dict[str, str], Iterable[bytes]]]) -> Iterator[bytes]:
    """Stream a multipart/related body from (headers, body chunks) pairs."""
    first = True
    for headers, body in parts:
        yield (b"" if first else b"\r\n") + part_header(boundary, headers)
        first = False
        for chunk in body:
            if chunk:
                yield chunk
    yield (b"" if first else b"\r\n") + f"--{boundary}--\r\n".encode("latin-1")


def multipart_length(boundary: str, parts: list[tuple[dict[str, str], int]]) -> int:
    """The exact byte length ``write_multipart`` produces for parts of known sizes (for Content-Length)."""
    total = 0
    for index, (headers, size) in enumerate(parts):
        total += (2 if index else 0) + len(part_header(boundary, headers)) + size
    return total + (2 if parts else 0) + len(f"--{boundary}--\r\n".encode("latin-1"))
