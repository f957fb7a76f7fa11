"""Blob storage: the contract every backend must keep, run against each backend.

Backends: the folder backend (always) and Azure Blob Storage against the Azurite emulator (when
DICOMCLOUD_TEST_AZURE_CONNECTION is set; scripts/test starts Azurite and sets it). To add a backend, write a
``make_<backend>(tmp_path) -> Backend`` factory and append it to ``BACKENDS``; the whole
``TestBlobStorageContract`` class then runs against it. Behaviour specific to one backend is tested in
tests/unit/storage/ (folder) and at the end of this file (Azure, which needs the emulator).
"""
from __future__ import annotations

import inspect
import os
import random
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from app.errors import BlobNotFound, StorageError
from app.storage.base import CHUNK_SIZE, BlobStorage, new_key
from app.storage.filesystem import FileSystemStorage
from tests.helpers import STORAGE_DATA as DATA, assert_every_operation_is_a_storage_error, make_source

AZURE_CONNECTION = os.environ.get("DICOMCLOUD_TEST_AZURE_CONNECTION")
needs_azurite = pytest.mark.skipif(
    not AZURE_CONNECTION,
    reason="DICOMCLOUD_TEST_AZURE_CONNECTION is not set (scripts/test starts Azurite when npm is available)")


@dataclass
class Backend:
    storage: BlobStorage
    stored_names: Callable[[], list[str]]
    """Every object the backend holds, committed or not (temporary uploads included), as sorted names."""
    cleanup: Callable[[], None] = field(default=lambda: None)


def make_filesystem(tmp_path: Path) -> Backend:
    root = tmp_path / "storage-root"
    storage = FileSystemStorage(root)

    def stored_names() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())

    return Backend(storage, stored_names)


def new_container_name() -> str:
    return "test-" + uuid.uuid4().hex[:20]


def delete_container(name: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient
    try:
        BlobServiceClient.from_connection_string(AZURE_CONNECTION).delete_container(name)
    except ResourceNotFoundError:
        pass


def make_azure(tmp_path: Path) -> Backend:
    """A fresh container on Azurite for one test, deleted afterwards."""
    from app.storage.azure_blob import AzureBlobStorage
    name = new_container_name()
    storage = AzureBlobStorage(AZURE_CONNECTION, name)

    def stored_names() -> list[str]:
        # Uncommitted blobs too: a block upload that never committed must not linger under any name.
        return sorted(b.name for b in storage._container.list_blobs(include=["uncommittedblobs"]))

    return Backend(storage, stored_names, cleanup=lambda: delete_container(name))


BACKENDS = [
    pytest.param(make_filesystem, id="filesystem"),
    pytest.param(make_azure, id="azure", marks=needs_azurite),
]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    made = request.param(tmp_path)
    yield made
    made.cleanup()



INVALID_KEYS = ["../x", "a/../x", "..", ".", "./a", "a/./b", "/abs/key.dcm", "/", "a\\b", "\\x", "",
                "a//b", "a/", "C:/x.dcm", "c:x", "ab/../../etc/passwd"]


class TestBlobStorageContract:
    """What every BlobStorage backend must do."""

    def test_backend_satisfies_the_protocol(self, backend):
        assert isinstance(backend.storage, BlobStorage)
        assert isinstance(backend.storage.name, str) and backend.storage.name

    # ------------------------------------------------------------------ put_file

    def test_put_file_copy_keeps_the_source(self, backend, source_dir):
        source = make_source(source_dir, DATA)
        key = new_key()
        assert backend.storage.put_file(key, str(source)) == len(DATA)
        assert source.read_bytes() == DATA
        assert backend.storage.exists(key)
        assert backend.storage.size(key) == len(DATA)
        with backend.storage.open(key) as handle:
            assert handle.read() == DATA
        assert backend.stored_names() == [key]

    def test_put_file_move_removes_the_source(self, backend, source_dir):
        source = make_source(source_dir, DATA)
        key = new_key()
        assert backend.storage.put_file(key, str(source), move=True) == len(DATA)
        assert not source.exists()
        assert backend.storage.size(key) == len(DATA)
        with backend.storage.open(key) as handle:
            assert handle.read() == DATA
        assert backend.stored_names() == [key]

    @pytest.mark.parametrize("move", [False, True])
    def test_put_file_not_yet_durable_then_synced(self, backend, source_dir, move):
        keys = [new_key() for _ in range(3)]
        for index, key in enumerate(keys):
            data = bytes([index]) * 1000
            assert backend.storage.put_file(key, str(make_source(source_dir, data, str(index))), move=move,
                                            durable=False) == 1000
        backend.storage.sync(keys + [new_key()])       # a key never put is ignored
        backend.storage.sync(keys)                     # and syncing twice is harmless
        for index, key in enumerate(keys):
            assert backend.storage.read_range(key, 0, 1000) == bytes([index]) * 1000
        assert backend.stored_names() == sorted(keys)

    @pytest.mark.parametrize("move", [False, True])
    def test_put_file_of_an_empty_file(self, backend, source_dir, move):
        key = new_key()
        assert backend.storage.put_file(key, str(make_source(source_dir, b"")), move=move) == 0
        assert backend.storage.exists(key)
        assert backend.storage.size(key) == 0
        assert backend.storage.read_range(key, 0, 0) == b""
        assert b"".join(backend.storage.iter_range(key)) == b""

    @pytest.mark.parametrize("move", [False, True])
    def test_put_file_replaces_an_existing_blob(self, backend, source_dir, move):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"old content, longer")))
        assert backend.storage.put_file(key, str(make_source(source_dir, b"new", "second")), move=move) == 3
        assert backend.storage.size(key) == 3
        assert backend.storage.read_range(key, 0, 3) == b"new"
        assert backend.stored_names() == [key]

    @pytest.mark.parametrize("key", ["x.dcm", "ab/cdef.dcm", "a/b/c/d.dcm", "1.2.840.10008/1.2.3.dcm",
                                     "with space/and-dash_underscore.dcm"])
    def test_keys_with_and_without_folders(self, backend, source_dir, key):
        backend.storage.put_file(key, str(make_source(source_dir, b"payload")))
        assert backend.storage.exists(key)
        assert backend.storage.read_range(key, 0, 7) == b"payload"
        assert backend.stored_names() == [key]

    def test_blobs_under_different_keys_are_independent(self, backend, source_dir):
        keys = [new_key() for _ in range(5)]
        for index, key in enumerate(keys):
            backend.storage.put_file(key, str(make_source(source_dir, bytes([index]) * (index + 1))))
        for index, key in enumerate(keys):
            assert backend.storage.read_range(key, 0, index + 1) == bytes([index]) * (index + 1)
        backend.storage.delete(keys[2])
        assert [backend.storage.exists(k) for k in keys] == [True, True, False, True, True]
        assert backend.stored_names() == sorted(keys[:2] + keys[3:])

    # ------------------------------------------------------------------ reading

    @pytest.mark.parametrize("start, length", [
        (0, 10),                                   # start
        (0, len(DATA)),                            # everything
        (len(DATA) // 2, 1000),                    # middle
        (len(DATA) - 10, 10),                      # end
        (len(DATA) - 1, 1),                        # last byte
        (len(DATA), 0),                            # empty range at the end
        (CHUNK_SIZE - 5, 10),                      # straddles the first chunk boundary
        (CHUNK_SIZE, CHUNK_SIZE),                  # exactly one aligned chunk
        (CHUNK_SIZE - 1, 2 * CHUNK_SIZE + 2),      # spans three chunk boundaries
        (1, len(DATA) - 2),
    ])
    def test_read_range(self, backend, source_dir, start, length):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, DATA)))
        assert backend.storage.read_range(key, start, length) == DATA[start:start + length]
        chunks = list(backend.storage.iter_range(key, start, length))
        assert b"".join(chunks) == DATA[start:start + length]
        assert all(0 < len(c) <= CHUNK_SIZE for c in chunks)

    @pytest.mark.parametrize("chunk_size", [1, 7, 4096, 65536])
    @pytest.mark.parametrize("start, length", [(0, None), (3, 50_000), (65_530, 20), (len(DATA) - 100, None),
                                               (len(DATA) - 100, 100), (100, 0)])
    def test_iter_range_with_small_chunk_sizes(self, backend, source_dir, chunk_size, start, length):
        key = new_key()
        data = DATA[:200_000] if chunk_size < 4096 else DATA
        if start >= len(data):
            start = len(data) - 100
        backend.storage.put_file(key, str(make_source(source_dir, data)))
        chunks = list(backend.storage.iter_range(key, start, length, chunk_size=chunk_size))
        expected = data[start:] if length is None else data[start:start + length]
        assert b"".join(chunks) == expected
        assert all(0 < len(c) <= chunk_size for c in chunks)

    def test_iter_range_defaults_to_the_whole_blob(self, backend, source_dir):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, DATA)))
        chunks = list(backend.storage.iter_range(key))
        assert b"".join(chunks) == DATA
        assert len(chunks) == -(-len(DATA) // CHUNK_SIZE)

    def test_iter_range_from_an_offset_to_the_end(self, backend, source_dir):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, DATA)))
        assert b"".join(backend.storage.iter_range(key, 1234)) == DATA[1234:]

    @pytest.mark.parametrize("start, length", [(0, len(DATA) + 1), (len(DATA) - 10, 11), (len(DATA), 1),
                                               (len(DATA) + 100, 5), (CHUNK_SIZE, 3 * CHUNK_SIZE)])
    def test_read_range_past_the_end_raises_storage_error(self, backend, source_dir, start, length):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, DATA)))
        with pytest.raises(StorageError) as info:
            backend.storage.read_range(key, start, length)
        assert not isinstance(info.value, BlobNotFound)
        with pytest.raises(StorageError):
            b"".join(backend.storage.iter_range(key, start, length))

    def test_open_returns_a_seekable_binary_file(self, backend, source_dir):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, DATA)))
        with backend.storage.open(key) as handle:
            assert handle.read(4) == DATA[:4]
            handle.seek(1000)
            assert handle.read(10) == DATA[1000:1010]

    # ------------------------------------------------------------------ missing blobs and delete

    def test_missing_blob(self, backend):
        key = new_key()
        assert not backend.storage.exists(key)
        with pytest.raises(BlobNotFound):
            backend.storage.open(key)
        with pytest.raises(BlobNotFound):
            backend.storage.size(key)
        with pytest.raises(BlobNotFound):
            backend.storage.read_range(key, 0, 1)
        with pytest.raises(BlobNotFound):
            list(backend.storage.iter_range(key))

    def test_blob_not_found_is_a_storage_error(self):
        assert issubclass(BlobNotFound, StorageError)

    def test_delete(self, backend, source_dir):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"x")))
        backend.storage.delete(key)
        assert not backend.storage.exists(key)
        with pytest.raises(BlobNotFound):
            backend.storage.open(key)
        with pytest.raises(BlobNotFound):
            backend.storage.size(key)
        assert backend.stored_names() == []

    def test_delete_of_a_missing_key_is_fine(self, backend, source_dir):
        backend.storage.delete(new_key())
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"x")))
        backend.storage.delete(key)
        backend.storage.delete(key)
        assert not backend.storage.exists(key)

    def test_a_deleted_key_can_be_written_again(self, backend, source_dir):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"first")))
        backend.storage.delete(key)
        backend.storage.put_file(key, str(make_source(source_dir, b"second")))
        assert backend.storage.read_range(key, 0, 6) == b"second"

    # ------------------------------------------------------------------ keys

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_raise_storage_error_everywhere(self, backend, source_dir, tmp_path, key):
        source = make_source(source_dir, b"attack")
        storage = backend.storage
        assert_every_operation_is_a_storage_error(storage, key, source)
        assert source.read_bytes() == b"attack"
        assert backend.stored_names() == []
        assert not (tmp_path / "x").exists()

    def test_new_key_takes_no_client_data(self):
        assert inspect.signature(new_key).parameters == {}

    def test_new_key_is_unique_and_well_formed(self):
        keys = [new_key() for _ in range(2000)]
        assert len(set(keys)) == len(keys)
        for key in keys:
            match = re.fullmatch(r"([0-9a-f]{2})/([0-9a-f]{32})\.dcm", key)
            assert match, key
            assert match.group(2).startswith(match.group(1))
        assert len({key[:2] for key in keys}) > 200      # fanned out over (nearly) all 256 folders

    def test_new_keys_are_accepted_by_the_backend(self, backend, source_dir):
        keys = [new_key() for _ in range(20)]
        for key in keys:
            backend.storage.put_file(key, str(make_source(source_dir, key.encode())))
        assert backend.stored_names() == sorted(keys)
        for key in keys:
            assert backend.storage.read_range(key, 0, len(key)) == key.encode()

    # ------------------------------------------------------------------ health

    def test_check_passes_and_leaves_nothing_behind(self, backend, source_dir):
        backend.storage.check()
        assert backend.stored_names() == []
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"x")))
        backend.storage.check()
        assert backend.stored_names() == [key]

    # ------------------------------------------------------------------ atomicity

    @pytest.mark.parametrize("move", [False, True])
    def test_failed_put_leaves_nothing_under_the_key(self, backend, source_dir, move):
        key = new_key()
        with pytest.raises(StorageError):
            backend.storage.put_file(key, str(source_dir / "does-not-exist"), move=move)
        assert not backend.storage.exists(key)
        with pytest.raises(BlobNotFound):
            backend.storage.size(key)
        assert backend.stored_names() == []

    @pytest.mark.parametrize("move", [False, True])
    def test_failed_replacement_keeps_the_previous_blob(self, backend, source_dir, move):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"the original")))
        with pytest.raises(StorageError):
            backend.storage.put_file(key, str(source_dir / "does-not-exist"), move=move)
        assert backend.storage.read_range(key, 0, 12) == b"the original"
        assert backend.storage.size(key) == 12
        assert backend.stored_names() == [key]

    def test_a_source_that_is_a_directory_fails_cleanly(self, backend, source_dir):
        key = new_key()
        with pytest.raises(StorageError):
            backend.storage.put_file(key, str(source_dir))
        assert not backend.storage.exists(key)
        assert backend.stored_names() == []
        assert source_dir.is_dir()

    def test_a_key_naming_a_folder_is_not_a_blob(self, backend, source_dir):
        key = new_key()
        backend.storage.put_file(key, str(make_source(source_dir, b"abc")))
        folder = key.split("/")[0]
        assert not backend.storage.exists(folder)
        with pytest.raises(BlobNotFound):
            backend.storage.size(folder)
        with pytest.raises(BlobNotFound):
            backend.storage.open(folder)
        with pytest.raises(BlobNotFound):
            backend.storage.read_range(folder, 0, 1)


# ---------------------------------------------------------------------------------------------- Azure specifics

@pytest.fixture
def azure(tmp_path):
    """An AzureBlobStorage on a fresh Azurite container (deleted afterwards) and its container name."""
    if not AZURE_CONNECTION:
        pytest.skip("DICOMCLOUD_TEST_AZURE_CONNECTION is not set (scripts/test starts Azurite)")
    made = make_azure(tmp_path)
    yield made.storage
    made.cleanup()


def _record_downloads(monkeypatch, storage) -> list[tuple[int, int]]:
    """Every ranged GET the backend makes from now on, as (offset, length)."""
    calls: list[tuple[int, int]] = []
    real = storage._download

    def download(blob, key, etag, start, length):
        calls.append((start, length))
        return real(blob, key, etag, start, length)

    monkeypatch.setattr(storage, "_download", download)
    return calls


def _raise_on_request(monkeypatch, predicate) -> list[str]:
    """Make every SDK request for which ``predicate(request)`` is true fail (as the service would)."""
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobClient
    real_upload = BlobClient.upload_blob
    fired = []

    def hook(request):
        if predicate(request.http_request):
            fired.append(request.http_request.url)
            raise HttpResponseError(message="injected failure")

    def upload_blob(self, *args, **kwargs):
        # No retry: the SDK passes a per-call hook to the first attempt only.
        return real_upload(self, *args, raw_request_hook=hook, retry_total=0, **kwargs)

    monkeypatch.setattr(BlobClient, "upload_blob", upload_blob)
    return fired


@needs_azurite
class TestAzureBlobStorage:
    """Behaviour specific to Azure Blob Storage, against Azurite."""

    def test_name_and_repr(self, azure):
        from app.storage.azure_blob import AzureBlobStorage
        assert azure.name == "azureblob"
        assert repr(azure).startswith("AzureBlobStorage('http://127.0.0.1:")
        assert "AccountKey" not in repr(azure) and azure.container_name in repr(azure)
        assert isinstance(azure, AzureBlobStorage)

    def test_the_container_is_created_at_start_and_an_existing_one_is_reused(self, azure, source_dir):
        from app.storage.azure_blob import AzureBlobStorage
        assert azure._container.exists()
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, b"kept")))
        again = AzureBlobStorage(AZURE_CONNECTION, azure.container_name)
        assert again.read_range(key, 0, 4) == b"kept"

    def test_a_container_that_could_not_be_created_at_start_is_created_by_check(self, tmp_path, monkeypatch):
        from azure.core.exceptions import ServiceRequestError
        from azure.storage.blob import ContainerClient
        from app.storage.azure_blob import AzureBlobStorage
        real = ContainerClient.create_container
        calls = []

        def flaky(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise ServiceRequestError("service unreachable (injected)")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(ContainerClient, "create_container", flaky)
        name = new_container_name()
        try:
            storage = AzureBlobStorage(AZURE_CONNECTION, name)      # no exception: the app must start
            assert not storage._container.exists()
            storage.check()
            assert storage._container.exists() and len(calls) == 2
        finally:
            delete_container(name)

    def test_a_container_deleted_behind_its_back_is_created_again_on_write(self, azure, source_dir):
        azure._container.delete_container()
        key = new_key()
        assert azure.put_file(key, str(make_source(source_dir, b"again")), move=True) == 5
        assert azure.read_range(key, 0, 5) == b"again"

    def test_reads_of_a_missing_container_are_blob_not_found(self, azure):
        azure._container.delete_container()
        key = new_key()
        assert not azure.exists(key)
        with pytest.raises(BlobNotFound):
            azure.size(key)
        with pytest.raises(BlobNotFound):
            azure.open(key)
        azure.delete(key)

    def test_blobs_are_stored_as_application_dicom(self, azure, source_dir):
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, b"DICM")))
        properties = azure._container.get_blob_client(key).get_blob_properties()
        assert properties.content_settings.content_type == "application/dicom"
        assert properties.blob_type == "BlockBlob"

    def test_a_large_file_is_uploaded_in_blocks(self, azure, source_dir):
        from app.storage.azure_blob import SINGLE_PUT_SIZE, UPLOAD_BLOCK_SIZE
        data = random.Random(7).randbytes(SINGLE_PUT_SIZE + UPLOAD_BLOCK_SIZE + 1000)
        key = new_key()
        source = make_source(source_dir, data)
        assert azure.put_file(key, str(source), move=True) == len(data)
        assert not source.exists()
        committed, uncommitted = azure._container.get_blob_client(key).get_block_list("all")
        assert len(committed) == 4 and uncommitted == []
        assert azure.read_range(key, 0, len(data)) == data

    def test_a_failed_block_commit_keeps_the_previous_blob(self, azure, source_dir, monkeypatch):
        from app.storage.azure_blob import SINGLE_PUT_SIZE
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, b"the original")))
        fired = _raise_on_request(monkeypatch, lambda request: "comp=blocklist" in request.url)
        big = make_source(source_dir, random.Random(3).randbytes(SINGLE_PUT_SIZE + 10), "big")
        with pytest.raises(StorageError) as info:
            azure.put_file(key, str(big), move=True)
        assert not isinstance(info.value, BlobNotFound) and len(fired) == 1
        assert big.exists()                                   # a failed move leaves the source in place
        assert azure.size(key) == 12
        assert azure.read_range(key, 0, 12) == b"the original"
        fresh = new_key()
        with pytest.raises(StorageError):
            azure.put_file(fresh, str(big))
        assert not azure.exists(fresh)                        # staged blocks are not a blob
        with pytest.raises(BlobNotFound):
            azure.size(fresh)

    def test_a_failed_single_put_keeps_the_previous_blob(self, azure, source_dir, monkeypatch):
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, b"the original")))
        _raise_on_request(monkeypatch, lambda request: request.method == "PUT")
        with pytest.raises(StorageError):
            azure.put_file(key, str(make_source(source_dir, b"replacement", "new")), move=True)
        assert azure.read_range(key, 0, 12) == b"the original"

    def test_open_streams_in_ranged_reads(self, azure, source_dir, monkeypatch):
        data = random.Random(5).randbytes(3 * 1024 * 1024)
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, data)))
        calls = _record_downloads(monkeypatch, azure)
        with azure.open(key) as handle:
            assert handle.read(132)[128:] == data[128:132]
            handle.seek(2_000_000)
            assert handle.read(16) == data[2_000_000:2_000_016]
            assert handle.tell() == 2_000_016
            handle.seek(-4, os.SEEK_END)
            assert handle.read() == data[-4:]
            assert handle.read(10) == b""
        assert calls and all(length <= CHUNK_SIZE for _, length in calls)
        assert sum(length for _, length in calls) < len(data) // 2

    def test_open_reads_everything_in_windows(self, azure, source_dir, monkeypatch):
        from app.storage.azure_blob import DOWNLOAD_WINDOW
        data = random.Random(6).randbytes(DOWNLOAD_WINDOW * 2 + 77)
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, data)))
        calls = _record_downloads(monkeypatch, azure)
        with azure.open(key) as handle:
            assert handle.read() == data
        assert len(calls) == 3 and max(length for _, length in calls) <= DOWNLOAD_WINDOW

    def test_pydicom_reads_through_open(self, azure, source_dir):
        import pydicom
        from pydicom.data import get_testdata_file
        original = Path(get_testdata_file("CT_small.dcm", download=False))
        key = new_key()
        azure.put_file(key, str(original))
        with azure.open(key) as handle:
            ds = pydicom.dcmread(handle)
            assert ds.PixelData == pydicom.dcmread(original).PixelData

    def test_iter_range_uses_bounded_ranged_reads(self, azure, source_dir, monkeypatch):
        from app.storage.azure_blob import DOWNLOAD_WINDOW
        data = random.Random(8).randbytes(DOWNLOAD_WINDOW * 2 + 500)
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, data)))
        calls = _record_downloads(monkeypatch, azure)
        assert b"".join(azure.iter_range(key, 100, len(data) - 200)) == data[100:-100]
        assert len(calls) == 3 and all(length <= DOWNLOAD_WINDOW for _, length in calls)
        calls.clear()
        assert azure.read_range(key, 10, 20) == data[10:30]
        assert calls == [(10, 20)]

    def test_iter_range_checks_the_blob_before_the_first_chunk(self, azure):
        with pytest.raises(BlobNotFound):
            azure.iter_range(new_key())          # raised on the call, not on the first next()

    def test_a_blob_replaced_while_streaming_fails_instead_of_mixing_versions(self, azure, source_dir):
        from app.storage.azure_blob import DOWNLOAD_WINDOW
        first = b"a" * (DOWNLOAD_WINDOW + 1000)
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, first)))
        chunks = azure.iter_range(key)
        assert next(chunks) == b"a" * CHUNK_SIZE
        handle = azure.open(key)
        assert handle.read(10) == b"a" * 10
        azure.put_file(key, str(make_source(source_dir, b"b" * len(first), "second")))
        with pytest.raises(StorageError) as info:
            list(chunks)
        assert "replaced" in str(info.value)
        handle.seek(DOWNLOAD_WINDOW)
        with pytest.raises(StorageError):
            handle.read(10)
        handle.close()

    def test_a_wrong_account_key_is_a_storage_error_not_a_missing_blob(self, azure, source_dir):
        from app.storage.azure_blob import AzureBlobStorage
        key = new_key()
        azure.put_file(key, str(make_source(source_dir, b"secret")))
        wrong = re.sub(r"AccountKey=[^;]+", "AccountKey=" + "A" * 86 + "==", AZURE_CONNECTION)
        intruder = AzureBlobStorage(wrong, azure.container_name)
        for operation in (lambda: intruder.size(key), lambda: intruder.read_range(key, 0, 1),
                          lambda: intruder.open(key), lambda: intruder.exists(key), intruder.check,
                          lambda: intruder.put_file(key, str(make_source(source_dir, b"x", "x")))):
            with pytest.raises(StorageError) as info:
                operation()
            assert not isinstance(info.value, BlobNotFound)
            assert "AccountKey" not in str(info.value)
        assert azure.read_range(key, 0, 6) == b"secret"

    def test_check_leaves_no_probe_blob(self, azure):
        for _ in range(3):
            azure.check()
        assert list(azure._container.list_blobs(include=["uncommittedblobs"])) == []
