"""The Azure Blob backend without a service: connection-string handling, the factory's choice, and what
happens when the service cannot be reached. Everything that needs Azurite is in
tests/integration/test_storage_contract.py.
"""
from __future__ import annotations

import time

import pytest

from app.config import load_settings
from app.errors import BlobNotFound, ConfigurationError, StorageError
from app.storage import open_storage
from app.storage.azure_blob import (DEVELOPMENT_KEY, AzureBlobStorage, is_connection_string,
                                    normalise_connection_string)
from app.storage.base import new_key
from app.storage.filesystem import FileSystemStorage
from tests.helpers import assert_every_operation_is_a_storage_error, free_port

ACCOUNT_KEY = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * 2


def closed_port_connection() -> str:
    """A connection string whose blob endpoint refuses connections (nothing listens on the port)."""
    return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEVELOPMENT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;")


@pytest.mark.parametrize("value", [
    "UseDevelopmentStorage=true",
    "usedevelopmentstorage=TRUE;",
    "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1",
    f"DefaultEndpointsProtocol=https;AccountName=pacs;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
    "BlobEndpoint=https://pacs.blob.core.windows.net/;SharedAccessSignature=sv=2024-01-01&sig=abc",
    " AccountName=pacs ; AccountKey=abc ",
])
def test_connection_strings_are_recognised(value):
    assert is_connection_string(value)


@pytest.mark.parametrize("value", [
    "|DataDirectory|/Storage", "/srv/dicom", "C:\\PACS\\Storage", "\\\\fileserver\\share\\dicom", "Storage",
    "/data/AccountName", "/data/key=value/Storage", "D:\\x;AccountNameish=1",
])
def test_folders_are_not_connection_strings(value):
    assert not is_connection_string(value)


def test_development_storage_is_spelled_out_for_azurite():
    expected = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEVELOPMENT_KEY};"
                "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
    assert normalise_connection_string("UseDevelopmentStorage=true") == expected
    assert normalise_connection_string("UseDevelopmentStorage=True;") == expected
    assert normalise_connection_string(
        "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://localhost:12345/") == expected.replace(
        "127.0.0.1:10000", "localhost:12345")


def test_other_connection_strings_are_left_alone():
    value = f"DefaultEndpointsProtocol=https;AccountName=pacs;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
    assert normalise_connection_string(value) == value
    assert normalise_connection_string("UseDevelopmentStorage=false;AccountName=x") == (
        "UseDevelopmentStorage=false;AccountName=x")


@pytest.fixture
def no_retries(monkeypatch):
    """Fail at once on a refused connection (the real retry timing is tested on its own below)."""
    import app.storage.azure_blob as module
    monkeypatch.setattr(module, "RETRY_CONNECT", 0)
    monkeypatch.setattr(module, "PROBE_RETRY_TOTAL", 0)


def _settings(tmp_path, **overrides):
    return load_settings(None, environ={}, overrides=overrides)


def test_factory_picks_a_folder_for_a_path(tmp_path):
    storage = open_storage(_settings(tmp_path, **{"app:PacsStorageConnection": str(tmp_path / "s")}))
    assert isinstance(storage, FileSystemStorage) and storage.name == "filesystem"


@pytest.mark.parametrize("container", ["dicom", "pacs-archive"])
def test_factory_picks_azure_for_a_connection_string_with_the_configured_container(tmp_path, container,
                                                                                    no_retries):
    overrides = {"app:PacsStorageConnection": closed_port_connection()}
    if container != "dicom":
        overrides["app:PacsStorageContainer"] = container
    storage = open_storage(_settings(tmp_path, **overrides))
    assert isinstance(storage, AzureBlobStorage) and storage.name == "azureblob"
    assert storage.container_name == container


def test_use_development_storage_points_at_azurites_default_port(tmp_path):
    storage = AzureBlobStorage("UseDevelopmentStorage=true", "dicom", create_container=False)
    assert storage.account_url.rstrip("/") == "http://127.0.0.1:10000/devstoreaccount1"


@pytest.mark.parametrize("container", ["", "ab", "Dicom", "di_com", "-dicom", "dicom-", "di--com", "x" * 64])
def test_an_invalid_container_name_is_a_configuration_error(container, no_retries):
    with pytest.raises(ConfigurationError) as info:
        AzureBlobStorage(closed_port_connection(), container)
    assert "app:PacsStorageContainer" in str(info.value)


def test_a_malformed_connection_string_is_a_configuration_error_without_the_key():
    value = f"DefaultEndpointsProtocol=https;AccountName=pacs;AccountKey={ACCOUNT_KEY};broken"
    with pytest.raises(ConfigurationError) as info:
        AzureBlobStorage(value, "dicom")
    assert "app:PacsStorageConnection" in str(info.value)
    assert ACCOUNT_KEY not in str(info.value)


def test_an_unreachable_service_does_not_stop_the_backend_from_being_created(caplog):
    started = time.monotonic()
    storage = AzureBlobStorage(closed_port_connection(), "dicom")
    assert storage.name == "azureblob"
    assert time.monotonic() - started < 15
    assert "not reachable at start" in caplog.text
    assert DEVELOPMENT_KEY not in caplog.text


def test_the_health_probe_fails_fast_when_the_service_is_unreachable():
    storage = AzureBlobStorage(closed_port_connection(), "dicom", create_container=False)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.check()
    assert time.monotonic() - started < 15
    assert not isinstance(info.value, BlobNotFound)
    assert "ServiceRequestError" in str(info.value) and DEVELOPMENT_KEY not in str(info.value)


def test_an_unreachable_service_is_a_storage_error_never_a_missing_blob(tmp_path, no_retries):
    storage = AzureBlobStorage(closed_port_connection(), "dicom", create_container=False)
    source = tmp_path / "upload.tmp"
    source.write_bytes(b"payload")
    key = new_key()
    assert_every_operation_is_a_storage_error(storage, key, source)
    assert source.read_bytes() == b"payload"          # a failed move keeps the source


@pytest.mark.parametrize("key", ["../x", "a//b", "/abs", "a\\b", "C:/x", "", "ab/x.", "a./b", "k" * 1025])
def test_invalid_keys_are_refused_before_any_request(tmp_path, key):
    storage = AzureBlobStorage(closed_port_connection(), "dicom", create_container=False)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.size(key)
    assert "invalid blob key" in str(info.value)
    assert time.monotonic() - started < 1
