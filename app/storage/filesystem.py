"""Blobs as files under one root folder (App_Data/Storage, a local disk or an SMB file share)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from app.errors import BlobNotFound, StorageError
from app.storage.base import CHUNK_SIZE, key_parts


class FileSystemStorage:
    name = "filesystem"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage folder {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileSystemStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key_parts(key))

    def put_file(self, key: str, source_path: str, *, move: bool = False) -> int:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
            try:
                if move:
                    os.close(fd)
                    try:
                        os.replace(source_path, temp_name)   # same volume: no copy
                    except OSError:
                        shutil.copyfile(source_path, temp_name)
                        os.unlink(source_path)
                    with open(temp_name, "rb+") as handle:
                        os.fsync(handle.fileno())
                else:
                    with os.fdopen(fd, "wb") as out, open(source_path, "rb") as src:
                        shutil.copyfileobj(src, out, CHUNK_SIZE)
                        out.flush()
                        os.fsync(out.fileno())
                size = os.path.getsize(temp_name)
                os.replace(temp_name, target)
            except BaseException:
                try:
                    os.unlink(temp_name)
                except OSError:
                    pass
                raise
            _fsync_dir(target.parent)
            return size
        except OSError as exc:
            raise StorageError(f"cannot write blob {key}: {exc}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot open blob {key}: {exc}") from exc

    def iter_range(self, key: str, start: int = 0, length: int | None = None,
                   chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        handle = self.open(key)
        try:
            handle.seek(start)
            remaining = length
            while remaining is None or remaining > 0:
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = handle.read(want)
                if not chunk:
                    if remaining:
                        raise StorageError(f"blob {key} ended {remaining} bytes early")
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    def read_range(self, key: str, start: int, length: int) -> bytes:
        return b"".join(self.iter_range(key, start, length))

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise FileNotFoundError(key)
            return path.stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot stat blob {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete blob {key}: {exc}") from exc

    def check(self) -> None:
        try:
            fd, name = tempfile.mkstemp(prefix=".health-", dir=self.root)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise StorageError(f"storage folder {self.root} is not writable: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
