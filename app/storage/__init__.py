"""The blob seam: where DICOM files live. No pydicom here.

Keys are chosen by the server (``new_key``), never built from a client's UID. Backends translate their
own errors into ``app.errors.StorageError`` so callers handle one kind of failure.
"""
from app.storage.base import BlobStorage, new_key
from app.storage.factory import open_storage

__all__ = ["BlobStorage", "new_key", "open_storage"]
