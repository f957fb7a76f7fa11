"""Blobs as files under one root folder (App_Data/Storage, a local disk or an SMB file share)."""
from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterator

from app.errors import BlobNotFound, StorageError
from app.storage.base import CHUNK_SIZE, key_parts


class FileSystemStorage:
    name = "filesystem"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._sync: _Syncer | None = None
        self._unsynced: dict = {}     # key -> (fsync future, folders to fsync) of puts with durable=False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage folder {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileSystemStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key_parts(key))

    def put_file(self, key: str, source_path: str, *, move: bool = False, durable: bool = True) -> int:
        target = self._path(key)
        try:
            dirs = self._make_parents(target.parent)
            if move:
                try:
                    if durable:
                        _fsync_path(Path(source_path), os.O_RDONLY)   # the bytes before the name
                    os.replace(source_path, target)   # same volume: no copy, and atomic
                    size = os.path.getsize(target)
                except OSError:
                    size = self._copy_into_place(source_path, target, durable)
                    os.unlink(source_path)
            else:
                size = self._copy_into_place(source_path, target, durable)
            if durable:
                self._syncer().dirs(dirs)
            else:
                self._unsynced[key] = self._syncer().file(target, dirs)
        except OSError as exc:
            raise StorageError(f"cannot write blob {key}: {exc}") from exc
        return size

    def sync(self, keys) -> None:
        """fsync the files of blobs put with ``durable=False``, then each of their folders once.

        The file fsyncs were started in the background when the blobs were put, so they overlap the
        caller's work (and each other: the file system commits concurrent fsyncs together).
        """
        pending = [self._unsynced.pop(key) for key in keys if key in self._unsynced]
        if pending:
            self._wait(pending)

    def _make_parents(self, folder: Path) -> set[Path]:
        """Create ``folder`` if needed; the folders whose entries changed (to fsync for durability)."""
        dirs = {folder}
        if not folder.is_dir():
            for parent in reversed(folder.relative_to(self.root).parents):
                dirs.add(self.root / parent)    # a new folder is durable once its parent is synced
            folder.mkdir(parents=True, exist_ok=True)
        return dirs

    @staticmethod
    def _copy_into_place(source_path: str, target: Path, durable: bool) -> int:
        """Copy to a temporary name beside ``target``, then rename: readers never see half a blob."""
        fd, temp_name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source_path, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK_SIZE)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            size = os.path.getsize(temp_name)
            os.replace(temp_name, target)
            return size
        except BaseException:
            try:
                os.unlink(temp_name)
            except OSError:
                pass
            raise

    def _syncer(self) -> "_Syncer":
        if self._sync is None or self._sync.pid != os.getpid():     # threads do not survive fork()
            self._sync = _Syncer()
        return self._sync

    def _wait(self, pending: list) -> None:
        dirs: set[Path] = set()
        try:
            for future, folders in pending:
                future.result()
                dirs |= folders
            self._syncer().dirs(dirs)
        except OSError as exc:
            raise StorageError(f"cannot make blobs durable: {exc}") from exc

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
        with self.open(key) as handle:
            handle.seek(start)
            data = handle.read(length)
        if len(data) != length:
            raise StorageError(f"blob {key} ended {length - len(data)} bytes early")
        return data

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
        self._unsynced.pop(key, None)
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


class _Syncer:
    """fsync on a few background threads: os.fsync releases the GIL, so the disk works while Python parses
    the next part, and concurrent fsyncs of one file system are committed together by its journal."""

    def __init__(self, threads: int = 8):
        self.pid = os.getpid()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fsync")

    def file(self, path: Path, dirs: set[Path]):
        return self.pool.submit(_fsync_path, path, os.O_RDONLY), dirs

    def dirs(self, dirs: set[Path]) -> None:
        if os.name != "posix":
            return     # Windows cannot open a folder to flush it; NTFS journals its metadata itself
        for future in [self.pool.submit(_fsync_folder, folder) for folder in sorted(dirs)]:
            future.result()


def _fsync_folder(path: Path) -> None:
    try:
        _fsync_path(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        pass     # some network file systems (SMB mounts) refuse fsync of a folder; the file itself was synced


def _fsync_path(path: Path, flags: int) -> None:
    if os.name != "posix" and not path.is_dir():
        with open(path, "rb+") as handle:     # Windows flushes only handles opened for writing
            os.fsync(handle.fileno())
        return
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
