"""Stream a ZIP archive (PS3.18 8.7.3.2: application/zip of Part-10 files) without a seekable output.

Members are written with data descriptors (sizes after the data) and ZIP64 records, so neither the
archive nor a member is ever held in memory or needs to be known in size beforehand.
"""
from __future__ import annotations

import io
import zipfile
from typing import Iterable, Iterator

ZIP = "application/zip"


class _Sink(io.RawIOBase):
    """A write-only, non-seekable file whose bytes are drained by the generator."""

    def __init__(self):
        super().__init__()
        self.pending = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        self.pending += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def drain(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


def zip_stream(members: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[bytes]:
    """The bytes of a ZIP archive of (name, body chunks) members, stored uncompressed, as they are made."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, chunks in members:
            with archive.open(name, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
                    if len(sink.pending) >= 256 * 1024:
                        yield sink.drain()
            yield sink.drain()
    tail = sink.drain()
    if tail:
        yield tail
