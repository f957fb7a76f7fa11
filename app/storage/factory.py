"""Pick the storage backend from ``app:PacsStorageConnection``.

An Azure Storage connection string (``UseDevelopmentStorage=true``, ``DefaultEndpointsProtocol=...;
AccountName=...;AccountKey=...``, ``BlobEndpoint=...;SharedAccessSignature=...``) selects Azure Blob Storage
with the container ``app:PacsStorageContainer``; anything else is a folder.
"""
from __future__ import annotations

from app.storage.azure_blob import is_connection_string
from app.storage.base import BlobStorage
from app.storage.filesystem import FileSystemStorage


def open_storage(settings) -> BlobStorage:
    connection = settings.storage_connection
    if is_connection_string(connection):
        from app.storage.azure_blob import AzureBlobStorage
        return AzureBlobStorage(connection, settings.storage_container)
    return FileSystemStorage(settings.resolve_path(connection))
