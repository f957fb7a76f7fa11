"""Blobs in one Azure Blob Storage container (or Azurite, the local emulator).

Chosen when ``app:PacsStorageConnection`` is an Azure Storage connection string; the container is
``app:PacsStorageContainer``. Keys become blob names unchanged (``ab/abcdef....dcm``), so the folders of
the filesystem backend show up as virtual directories in Storage Explorer.

How the interface maps onto the service:

* ``put_file`` is one ``upload_blob(overwrite=True)``: a single Put Blob for small files, staged blocks
  plus one Put Block List for large ones. Either way the new content becomes visible in one step when it
  is committed, so a failed upload leaves the previous blob (or none) in place.
* reads are ranged GETs (``download_blob(offset, length)``) pinned to the ETag seen first, so a blob
  replaced while it is being streamed fails with StorageError instead of mixing two versions.
* every ``azure.core`` exception is translated here: not found -> BlobNotFound, anything else ->
  StorageError. Nothing above this module imports the Azure SDK.

If the service cannot be reached when the app starts, the backend is still created (the container is
created later, on the first write or health check) so /health can report 503 instead of the app failing
to start; a malformed connection string or container name is a ConfigurationError at start.
"""
from __future__ import annotations

import io
import logging
import os
import re
import threading
import uuid
from typing import BinaryIO, Iterator

from app.errors import BlobNotFound, ConfigurationError, StorageError
from app.storage.base import CHUNK_SIZE, key_parts

log = logging.getLogger(__name__)

# Ranged GETs are this large (each one is a round trip; iter_range re-slices them to the caller's chunk
# size). Bounds the memory one stream holds.
DOWNLOAD_WINDOW = 4 * 1024 * 1024
# Files up to this size go up in one Put Blob; larger ones in blocks of UPLOAD_BLOCK_SIZE.
SINGLE_PUT_SIZE = 8 * 1024 * 1024
UPLOAD_BLOCK_SIZE = 4 * 1024 * 1024
UPLOAD_CONCURRENCY = 4
# Transport: retry transient errors (500, 503 "server busy", dropped connections) a few times with a short
# backoff (about 2.5 s, 4.5 s, 8.5 s; the SDK default of 15 s, 18 s, 24 s, ... would hold a STOW request for
# a minute), but a refused connection only once: the service is down, not busy. The container creation at
# start and the health probe retry once at most, so neither hangs while the service is unreachable.
CONNECTION_TIMEOUT = 10
READ_TIMEOUT = 60
RETRY_TOTAL = 3
RETRY_CONNECT = 1
PROBE_RETRY_TOTAL = 1

DEVELOPMENT_ACCOUNT = "devstoreaccount1"
# The well-known, public key of the emulator's development account (documented by Microsoft).
DEVELOPMENT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")

_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_CONNECTION_KEYS = ("usedevelopmentstorage", "defaultendpointsprotocol", "accountname", "accountkey",
                    "blobendpoint", "sharedaccesssignature", "endpointsuffix")


def is_connection_string(value: str) -> bool:
    """True when ``value`` looks like an Azure Storage connection string rather than a folder path."""
    for segment in value.split(";"):
        name, sep, _ = segment.partition("=")
        if sep and name.strip().lower() in _CONNECTION_KEYS:
            return True
    return False


def normalise_connection_string(value: str) -> str:
    """``UseDevelopmentStorage=true`` (any case) spelled out for Azurite's default blob endpoint.

    The SDK understands only the lower-case ``true`` and ignores ``DevelopmentStorageProxyUri``; spelling
    the account out here makes every form behave the same.
    """
    pairs = [segment.partition("=") for segment in value.strip().rstrip(";").split(";") if segment.strip()]
    settings = {name.strip().lower(): val.strip() for name, _, val in pairs}
    if settings.get("usedevelopmentstorage", "").lower() != "true":
        return value.strip()
    proxy = settings.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
    if proxy.count(":") < 2:             # no port given: the emulator's default blob port
        proxy += ":10000"
    return (f"DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT};AccountKey={DEVELOPMENT_KEY};"
            f"BlobEndpoint={proxy}/{DEVELOPMENT_ACCOUNT};")


def _azure():
    """The SDK, imported on first use so the folder backend never pays for it."""
    from azure.core import MatchConditions, exceptions
    from azure.storage.blob import BlobServiceClient, ContentSettings, ExponentialRetry
    return MatchConditions, exceptions, BlobServiceClient, ContentSettings, ExponentialRetry


class AzureBlobStorage:
    name = "azureblob"

    def __init__(self, connection_string: str, container: str, *, create_container: bool = True):
        if not _CONTAINER_NAME.match(container or ""):
            raise ConfigurationError([
                f"app:PacsStorageContainer: {container!r} is not a valid container name (3-63 characters: "
                "lower-case letters, digits and single hyphens, starting and ending with a letter or digit)"])
        MatchConditions, exceptions, BlobServiceClient, ContentSettings, ExponentialRetry = _azure()
        self._exceptions = exceptions
        self._if_unchanged = MatchConditions.IfNotModified
        self._content_settings = ContentSettings(content_type="application/dicom")
        try:
            service = BlobServiceClient.from_connection_string(
                normalise_connection_string(connection_string),
                retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=RETRY_TOTAL,
                                              retry_connect=RETRY_CONNECT, random_jitter_range=0.5),
                connection_timeout=CONNECTION_TIMEOUT, read_timeout=READ_TIMEOUT,
                max_single_put_size=SINGLE_PUT_SIZE, max_block_size=UPLOAD_BLOCK_SIZE,
                max_single_get_size=DOWNLOAD_WINDOW, max_chunk_get_size=DOWNLOAD_WINDOW)
        except (ValueError, KeyError, TypeError) as exc:
            # The connection string itself is never echoed: it holds the account key.
            raise ConfigurationError([f"app:PacsStorageConnection: not a usable Azure Storage connection "
                                      f"string ({type(exc).__name__}: {exc})"]) from None
        self.container_name = container
        self.account_url = service.url
        self._container = service.get_container_client(container)
        self._container_ready = False
        self._lock = threading.Lock()
        if create_container:
            try:
                self._ensure_container(retry_total=PROBE_RETRY_TOTAL)
            except StorageError as exc:
                log.warning("Azure Blob Storage is not reachable at start (%s); the container %r will be "
                            "created on first use and /health reports 503 until then", exc, container)

    def __repr__(self) -> str:
        return f"AzureBlobStorage({self.account_url!r}, {self.container_name!r})"

    # ------------------------------------------------------------------ helpers

    def _translate(self, exc: Exception, what: str) -> StorageError:
        if isinstance(exc, self._exceptions.ResourceNotFoundError):
            return BlobNotFound(what)
        return StorageError(f"Azure Blob Storage: {what}: {_describe(exc)}")

    def _blob(self, key: str):
        parts = key_parts(key)
        # Blob names are at most 1024 characters, and a trailing dot of a path segment is dropped when the
        # URL is normalised, which would make two keys name one blob.
        if len(key) > 1024 or any(part.endswith(".") for part in parts):
            raise StorageError(f"invalid blob key {key!r} for Azure Blob Storage")
        return self._container.get_blob_client(key)

    def _ensure_container(self, **options) -> None:
        if self._container_ready:
            return
        with self._lock:
            if self._container_ready:
                return
            try:
                self._container.create_container(**options)
                log.info("created blob container %r", self.container_name)
            except self._exceptions.ResourceExistsError:
                pass
            except self._exceptions.AzureError as exc:
                raise StorageError(f"Azure Blob Storage: cannot create container {self.container_name!r}: "
                                   f"{_describe(exc)}") from exc
            self._container_ready = True

    def _properties(self, blob, key: str):
        try:
            return blob.get_blob_properties()
        except self._exceptions.AzureError as exc:
            raise self._translate(exc, key) from exc

    def _download(self, blob, key: str, etag: str, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``start`` of the blob version ``etag`` (one ranged GET or a few)."""
        try:
            data = blob.download_blob(offset=start, length=length, etag=etag,
                                      match_condition=self._if_unchanged, max_concurrency=1).readall()
        except self._exceptions.ResourceModifiedError as exc:
            raise StorageError(f"Azure Blob Storage: {key} was replaced while it was being read") from exc
        except self._exceptions.AzureError as exc:
            raise self._translate(exc, key) from exc
        if len(data) != length:
            raise StorageError(f"Azure Blob Storage: {key}: expected {length} bytes at {start}, "
                               f"got {len(data)}")
        return data

    # ------------------------------------------------------------------ BlobStorage

    def put_file(self, key: str, source_path: str, *, move: bool = False, durable: bool = True) -> int:
        # A committed upload is durable in Azure (three synchronous replicas): ``durable`` changes nothing.
        blob = self._blob(key)
        try:
            handle = open(source_path, "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {source_path} to store blob {key}: {exc}") from exc
        with handle:
            try:
                size = os.fstat(handle.fileno()).st_size
                self._ensure_container()
                self._upload(blob, key, handle, size)
            except OSError as exc:
                raise StorageError(f"cannot read {source_path} to store blob {key}: {exc}") from exc
        if move:
            try:
                os.unlink(source_path)
            except FileNotFoundError:
                pass
            except OSError as exc:     # the blob is stored; a leftover temp file is not worth failing for
                log.warning("stored blob %s but could not remove %s: %s", key, source_path, exc)
        return size

    def _upload(self, blob, key: str, handle, size: int) -> None:
        for attempt in (1, 2):
            handle.seek(0)
            try:
                blob.upload_blob(handle, length=size, overwrite=True, max_concurrency=UPLOAD_CONCURRENCY,
                                 content_settings=self._content_settings)
                return
            except self._exceptions.ResourceNotFoundError as exc:
                # The container went away after start (deleted by hand): create it again, once.
                if attempt == 2:
                    raise StorageError(
                        f"Azure Blob Storage: cannot write blob {key}: {_describe(exc)}") from exc
                self._container_ready = False
                self._ensure_container()
            except self._exceptions.AzureError as exc:
                raise StorageError(f"Azure Blob Storage: cannot write blob {key}: {_describe(exc)}") from exc

    def sync(self, keys) -> None:
        """Nothing to do: every upload is durable when put_file returns."""

    def open(self, key: str) -> BinaryIO:
        blob = self._blob(key)
        properties = self._properties(blob, key)
        return _BlobFile(self, blob, key, properties.size, properties.etag)

    def iter_range(self, key: str, start: int = 0, length: int | None = None,
                   chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        # Checked before the first chunk (not lazily) so a caller can answer 404 before streaming starts.
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        blob = self._blob(key)
        properties = self._properties(blob, key)
        end = properties.size if length is None else start + length
        if start < 0 or end < start:
            raise StorageError(f"invalid range {start}+{length} of blob {key}")
        if end > properties.size:
            raise StorageError(f"blob {key} holds {properties.size} bytes; the range {start}+{end - start} "
                               "runs past its end")
        return self._chunks(blob, key, properties.etag, start, end, chunk_size)

    def _chunks(self, blob, key: str, etag: str, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        window = max(DOWNLOAD_WINDOW - DOWNLOAD_WINDOW % chunk_size, chunk_size)
        position = start
        while position < end:
            data = self._download(blob, key, etag, position, min(window, end - position))
            view = memoryview(data)
            for offset in range(0, len(data), chunk_size):
                yield bytes(view[offset:offset + chunk_size])
            position += len(data)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        # One ranged download, not one per CHUNK_SIZE.
        return b"".join(self.iter_range(key, start, length, chunk_size=max(length, 1)))

    def size(self, key: str) -> int:
        blob = self._blob(key)
        return self._properties(blob, key).size

    def exists(self, key: str) -> bool:
        blob = self._blob(key)
        try:
            return blob.exists()
        except self._exceptions.AzureError as exc:
            raise self._translate(exc, key) from exc

    def delete(self, key: str) -> None:
        blob = self._blob(key)
        try:
            blob.delete_blob()
        except self._exceptions.ResourceNotFoundError:
            pass
        except self._exceptions.AzureError as exc:
            raise StorageError(f"Azure Blob Storage: cannot delete blob {key}: {_describe(exc)}") from exc

    def check(self) -> None:
        """Create the container if needed, then write and delete a tiny probe blob."""
        self._ensure_container(retry_total=PROBE_RETRY_TOTAL)
        probe = self._container.get_blob_client(f".health/{uuid.uuid4().hex}")
        try:
            probe.upload_blob(b"ok", overwrite=True, retry_total=PROBE_RETRY_TOTAL)
            probe.delete_blob(retry_total=PROBE_RETRY_TOTAL)
        except self._exceptions.AzureError as exc:
            raise StorageError(f"Azure Blob Storage: container {self.container_name!r} is not writable: "
                               f"{_describe(exc)}") from exc


class _BlobFile(io.BufferedIOBase):
    """A seekable, read-only file object over one blob version, read through ranged GETs.

    Small reads are served from a read-ahead buffer of CHUNK_SIZE bytes (pydicom reads a header in many
    tiny reads); large ones go straight to ranged GETs of at most DOWNLOAD_WINDOW bytes. Deliberately not an
    ``io.BufferedReader``: pydicom takes one of those for a file on disk and would try to reopen it by name.
    """

    def __init__(self, storage: AzureBlobStorage, blob, key: str, size: int, etag: str):
        super().__init__()
        self._storage = storage
        self._blob = blob
        self._key = key
        self._size = size
        self._etag = etag
        self._position = 0
        self._buffer = b""
        self._buffer_start = 0

    def __repr__(self) -> str:
        return f"<azure blob {self._key!r} ({self._size} bytes)>"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError(22, "negative seek position")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        parts = []
        while self._position < end:
            offset = self._position - self._buffer_start
            if 0 <= offset < len(self._buffer):
                piece = self._buffer[offset:offset + end - self._position]
            elif end - self._position >= CHUNK_SIZE:
                piece = self._storage._download(self._blob, self._key, self._etag, self._position,
                                                min(end - self._position, DOWNLOAD_WINDOW))
            else:
                self._buffer_start = self._position
                self._buffer = self._storage._download(self._blob, self._key, self._etag, self._position,
                                                       min(CHUNK_SIZE, self._size - self._position))
                continue
            parts.append(piece)
            self._position += len(piece)
        return b"".join(parts)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._buffer = b""
        super().close()


def _describe(exc: Exception) -> str:
    """A one-line reason, without the request dump the SDK appends to its messages."""
    lines = str(exc).strip().splitlines()
    details = ", ".join(str(x) for x in (getattr(exc, "status_code", None), getattr(exc, "error_code", None))
                        if x)
    return (f"{type(exc).__name__}{f' ({details})' if details else ''}: "
            f"{lines[0] if lines else ''}").rstrip(": ")
