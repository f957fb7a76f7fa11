"""Every setting declared once: key, type, default and doc.

Precedence: explicit overrides > environment > web.config ``<appSettings>`` > default. Environment names
follow Azure App Service: the key as written, or with ``:`` -> ``__`` and ``.`` -> ``_`` (how Linux App
Service injects App Settings), optionally prefixed with ``APPSETTING_``.

``|DataDirectory|`` in a value means the ``App_Data`` folder beside web.config, as in ASP.NET.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from app.config.webconfig import read_app_settings
from app.errors import ConfigurationError


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_int(raw: str) -> int:
    return int(raw.strip())


def _parse_str(raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class Setting:
    key: str            # as written in web.config
    name: str           # attribute name on Settings
    parse: Callable[[str], Any]
    default: str
    doc: str
    minimum: int | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("app:PacsStorageConnection", "storage_connection", _parse_str, "|DataDirectory|/Storage",
            "Where DICOM files are kept: a folder (absolute, or relative to web.config's folder; "
            "|DataDirectory| is App_Data beside web.config), or an Azure Storage connection string "
            "(DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net, "
            "BlobEndpoint=...;SharedAccessSignature=..., or UseDevelopmentStorage=true for the Azurite "
            "emulator on 127.0.0.1:10000)."),
    Setting("app:PacsStorageContainer", "storage_container", _parse_str, "dicom",
            "The Azure Blob Storage container that holds the DICOM files when app:PacsStorageConnection is "
            "a connection string; created at start if missing. Ignored for a folder."),
    Setting("app:PacsDataArchieve", "database_url", _parse_str, "sqlite:///|DataDirectory|/pacs.sqlite3",
            "The index database: an SQLAlchemy URL (sqlite:///..., postgresql+psycopg2://..., "
            "mssql+pyodbc://...) or an ODBC connection string for MS SQL / Azure SQL (spelling kept "
            "from DICOMcloud)."),
    Setting("app:WadoRsUrl", "wado_rs_url", _parse_str, "",
            "Base URL of WADO-RS used in RetrieveURL and BulkDataURI values, e.g. https://pacs/api. "
            "Empty: derived from each request's host and scheme."),
    Setting("app:WadoUriUrl", "wado_uri_url", _parse_str, "",
            "Base URL of WADO-URI, e.g. https://pacs/api/wadouri. Accepted (and validated) so DICOMcloud "
            "web.config files keep working; no response of this version carries a WADO-URI URL."),
    Setting("app:storecommand.validateDuplicateInstance", "validate_duplicate_instance", _parse_bool, "true",
            "true: storing an existing SOP Instance UID fails with reason 0x0111 (duplicate). "
            "false: the new object replaces the stored one atomically."),
    Setting("app:enableAnonymizer", "enable_anonymizer", _parse_bool, "false",
            "De-identify every object on store (PS3.15 Annex E) before it is indexed and written."),
    Setting("app:anonymizerOptions", "anonymizer_options", _parse_str,
            "BasicProfile,RetainUIDs,RetainLongFullDates,RetainPatientChars",
            "De-identification profile and options, comma separated (used when enableAnonymizer is true)."),
    Setting("app:anonymizerUidSecret", "anonymizer_uid_secret", _parse_str, "",
            "Secret key of the de-identification mapping (new UIDs, Patient ID pseudonyms, per-patient date "
            "shift): the same key gives the same new UID for the same original UID, across uploads and "
            "restarts. Empty: a random key generated once and kept in App_Data/anonymizer.key. Keep it "
            "secret; changing it splits studies stored before and after."),
    Setting("app:tempDirectory", "temp_directory", _parse_str, "|DataDirectory|/tmp",
            "Where uploads are spooled while they are parsed. Keep it on the same volume as the storage "
            "folder so a store is a rename, not a copy."),
    Setting("stow:maxRequestBytes", "max_request_bytes", _parse_int, "0",
            "Largest STOW-RS request body accepted, in bytes; 0 means no limit.", minimum=0),
    Setting("stow:maxPartHeaderBytes", "max_part_header_bytes", _parse_int, "65536",
            "Largest header block of one multipart part, in bytes.", minimum=1024),
    Setting("qido:maximumResultsLimit", "qido_maximum_results", _parse_int, "1000",
            "Most results one QIDO-RS request returns; a larger or missing limit is cut to this with a "
            "Warning header.", minimum=1),
    Setting("app:logLevel", "log_level", _parse_str, "INFO", "Python logging level of the server."),
)

_BY_KEY = {s.key: s for s in SETTINGS}


def environment_names(key: str) -> list[str]:
    """The environment variable names that may carry ``key`` (Azure App Service conventions)."""
    linux = key.replace(":", "__").replace(".", "_")
    names = [key, linux]
    names += ["APPSETTING_" + n for n in (key, linux)]
    return list(dict.fromkeys(names))


class Settings:
    """Typed, validated settings. Attribute names come from ``SETTINGS``; ``raw`` keeps every string."""

    def __init__(self, values: dict[str, Any], raw: dict[str, str], config_path: Path | None,
                 data_directory: Path):
        self._values = values
        self.raw = raw
        self.config_path = config_path
        self.data_directory = data_directory

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def resolve_path(self, value: str) -> Path:
        """A folder setting as an absolute path: |DataDirectory| expanded, relative to web.config's folder."""
        value = value.replace("|DataDirectory|", str(self.data_directory)).replace("\\", os.sep)
        path = Path(value).expanduser()
        if not path.is_absolute():
            base = self.config_path.parent if self.config_path else Path.cwd()
            path = base / path
        return path

    def expand(self, value: str) -> str:
        """|DataDirectory| expanded in free text such as a database URL."""
        return value.replace("|DataDirectory|", str(self.data_directory).replace("\\", "/"))


def load_settings(config_path: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings; raise ConfigurationError listing every problem found."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    path = Path(config_path).resolve() if config_path else None
    from_file: dict[str, str] = read_app_settings(path) if path else {}

    raw: dict[str, str] = {}
    problems: list[str] = []
    for setting in SETTINGS:
        value = setting.default
        if setting.key in from_file:
            value = from_file[setting.key]
        for name in environment_names(setting.key):
            if name in environ:
                value = environ[name]
                break
        raw[setting.key] = value

    values: dict[str, Any] = {}
    for key, value in overrides.items():
        setting = _BY_KEY.get(key) or next((s for s in SETTINGS if s.name == key), None)
        if setting is None:
            problems.append(f"override {key!r} is not a known setting")
            continue
        if isinstance(value, str):
            raw[setting.key] = value
        else:
            values[setting.name] = value
            raw[setting.key] = str(value)

    for setting in SETTINGS:
        if setting.name in values:
            continue
        try:
            parsed = setting.parse(raw[setting.key])
        except ValueError as exc:
            problems.append(f"{setting.key}: {exc}")
            continue
        if setting.minimum is not None and parsed < setting.minimum:
            problems.append(f"{setting.key}: must be at least {setting.minimum}, got {parsed}")
            continue
        values[setting.name] = parsed

    if values.get("log_level") and values["log_level"].upper() not in (
            "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append(f"app:logLevel: unknown level {values['log_level']!r}")
    for key in ("wado_rs_url", "wado_uri_url"):
        url = values.get(key)
        if url and not url.startswith(("http://", "https://")):
            problems.append(f"{_key_of(key)}: must be an absolute http(s) URL, got {url!r}")
    if "storage_connection" in values and not values["storage_connection"]:
        problems.append("app:PacsStorageConnection: must not be empty")
    if "database_url" in values and not values["database_url"]:
        problems.append("app:PacsDataArchieve: must not be empty")
    if problems:
        raise ConfigurationError(problems)

    data_directory = (path.parent if path else Path.cwd()) / "App_Data"
    return Settings(values, raw, path, data_directory)


def _key_of(name: str) -> str:
    return next(s.key for s in SETTINGS if s.name == name)
