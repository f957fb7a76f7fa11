"""Pick the storage backend from ``app:PacsStorageConnection``."""
from __future__ import annotations

from app.errors import ConfigurationError
from app.storage.base import BlobStorage
from app.storage.filesystem import FileSystemStorage


def open_storage(settings) -> BlobStorage:
    connection = settings.storage_connection
    lowered = connection.lower()
    if lowered.startswith("usedevelopmentstorage=") or "accountname=" in lowered or "blobendpoint=" in lowered:
        raise ConfigurationError([
            "app:PacsStorageConnection: Azure Blob Storage connection strings are not supported yet; "
            "use a folder path"])
    return FileSystemStorage(settings.resolve_path(connection))
