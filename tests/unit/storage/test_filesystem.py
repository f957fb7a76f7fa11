"""The folder blob backend: what is specific to it. The contract every backend keeps (this one included)
is tests/integration/test_storage_contract.py.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from app.errors import BlobNotFound, StorageError
from app.storage.base import new_key
from app.storage.filesystem import FileSystemStorage
from tests.helpers import STORAGE_DATA as DATA, make_source




class TestFileSystemStorage:
    """Behaviour specific to the folder backend."""

    def test_blobs_are_plain_files_under_the_root(self, tmp_path, source_dir):
        storage = FileSystemStorage(tmp_path / "root")
        storage.put_file("ab/abcdef.dcm", str(make_source(source_dir, b"content")))
        assert (tmp_path / "root" / "ab" / "abcdef.dcm").read_bytes() == b"content"
        assert storage.name == "filesystem"
        assert repr(storage) == f"FileSystemStorage({str(tmp_path / 'root')!r})"

    def test_root_is_created_with_parents(self, tmp_path):
        root = tmp_path / "a" / "b" / "c"
        FileSystemStorage(root).check()
        assert root.is_dir()

    def test_root_that_is_a_regular_file_is_refused(self, tmp_path):
        root = tmp_path / "not-a-folder"
        root.write_bytes(b"")
        with pytest.raises(StorageError) as info:
            FileSystemStorage(root)
        assert str(root) in str(info.value)

    def test_move_on_the_same_volume_is_a_rename(self, tmp_path, source_dir):
        storage = FileSystemStorage(tmp_path / "root")
        source = make_source(source_dir, DATA)
        inode = source.stat().st_ino
        key = new_key()
        storage.put_file(key, str(source), move=True)
        assert (tmp_path / "root" / key).stat().st_ino == inode

    def test_move_across_volumes_falls_back_to_copy(self, tmp_path, source_dir, monkeypatch):
        # Simulate EXDEV: os.replace of the *source* fails, as it does across file systems.
        storage = FileSystemStorage(tmp_path / "root")
        source = make_source(source_dir, DATA)
        real_replace = os.replace

        def replace(src, dst):
            if os.fspath(src) == str(source):
                raise OSError(18, "Invalid cross-device link")
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        key = new_key()
        assert storage.put_file(key, str(source), move=True) == len(DATA)
        assert not source.exists()
        assert (tmp_path / "root" / key).read_bytes() == DATA
        assert not list((tmp_path / "root").rglob(".incoming-*"))

    def test_copy_failing_midway_leaves_no_temp_file_and_no_blob(self, tmp_path, source_dir, monkeypatch):
        storage = FileSystemStorage(tmp_path / "root")
        source = make_source(source_dir, DATA)

        def copy_then_fail(src, dst, length=0):
            dst.write(src.read(1000))
            dst.flush()
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)
        key = new_key()
        with pytest.raises(StorageError) as info:
            storage.put_file(key, str(source))
        assert "No space left" in str(info.value)
        assert not storage.exists(key)
        assert [p for p in (tmp_path / "root").rglob("*") if p.is_file()] == []
        assert source.read_bytes() == DATA

    def test_copy_failing_midway_keeps_the_previous_blob(self, tmp_path, source_dir, monkeypatch):
        storage = FileSystemStorage(tmp_path / "root")
        key = new_key()
        storage.put_file(key, str(make_source(source_dir, b"previous")))

        def copy_then_fail(src, dst, length=0):
            dst.write(src.read(3))
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)
        with pytest.raises(StorageError):
            storage.put_file(key, str(make_source(source_dir, DATA, "new")))
        assert storage.read_range(key, 0, 8) == b"previous"
        assert [p.name for p in (tmp_path / "root").rglob("*") if p.is_file()] == [key.split("/")[1]]

    def test_failed_put_leaves_no_incoming_temp_file(self, tmp_path, source_dir):
        storage = FileSystemStorage(tmp_path / "root")
        for move in (False, True):
            with pytest.raises(StorageError):
                storage.put_file("ab/x.dcm", str(source_dir / "missing"), move=move)
        assert not list((tmp_path / "root").rglob(".incoming-*"))
        assert not (tmp_path / "root" / "ab" / "x.dcm").exists()

    def test_a_folder_key_is_not_a_blob(self, tmp_path, source_dir):
        storage = FileSystemStorage(tmp_path / "root")
        storage.put_file("ab/cd.dcm", str(make_source(source_dir, b"x")))
        assert not storage.exists("ab")
        with pytest.raises(StorageError):
            storage.open("ab")

    def test_check_raises_when_the_root_is_not_writable(self, tmp_path):
        root = tmp_path / "root"
        storage = FileSystemStorage(root)
        storage.check()
        root.chmod(0o500)
        try:
            if _can_create_file_in(root):
                # Running as root: permission bits do not stop us. Make the root a regular file instead.
                root.chmod(0o700)
                root.rmdir()
                root.write_bytes(b"")
            with pytest.raises(StorageError) as info:
                storage.check()
            assert "not writable" in str(info.value)
            assert str(root) in str(info.value)
        finally:
            if root.is_dir():
                root.chmod(0o700)

    def test_check_raises_when_the_root_disappears(self, tmp_path):
        root = tmp_path / "root"
        storage = FileSystemStorage(root)
        root.rmdir()
        with pytest.raises(StorageError):
            storage.check()

    def test_check_leaves_no_health_file(self, tmp_path):
        root = tmp_path / "root"
        storage = FileSystemStorage(root)
        storage.check()
        assert list(root.iterdir()) == []

    def test_stored_blob_is_readable_by_the_owner(self, tmp_path, source_dir):
        storage = FileSystemStorage(tmp_path / "root")
        key = new_key()
        storage.put_file(key, str(make_source(source_dir, b"x")))
        mode = (tmp_path / "root" / key).stat().st_mode
        assert stat.S_ISREG(mode) and mode & stat.S_IRUSR


def _can_create_file_in(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def test_a_key_naming_a_folder_is_not_a_blob(tmp_path):
    storage = FileSystemStorage(tmp_path / "root")
    key = new_key()
    source = tmp_path / "src"
    source.write_bytes(b"abc")
    storage.put_file(key, str(source))
    folder = key.split("/")[0]
    assert not storage.exists(folder)
    with pytest.raises(BlobNotFound):
        storage.size(folder)
    with pytest.raises(BlobNotFound):
        storage.open(folder)
