"""DICOMcloud for Python: a DICOMweb server (PS3.18) for IIS/Azure App Service and laptops alike.

``create_app`` wires settings -> seams (index engine, blob storage) -> flask-smorest Api -> blueprints ->
error handlers. Nothing happens at import time.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from flask_smorest import Api

__version__ = "0.1.0"

DEFAULT_CONFIG_ENV = "DICOMCLOUD_CONFIG"


def default_config_path() -> Path | None:
    """``$DICOMCLOUD_CONFIG``, else ./web.config, else the web.config beside the app package."""
    configured = os.environ.get(DEFAULT_CONFIG_ENV)
    if configured:
        return Path(configured)
    for candidate in (Path.cwd() / "web.config", Path(__file__).resolve().parent.parent / "web.config"):
        if candidate.is_file():
            return candidate
    return None


def create_app(config_path: str | os.PathLike | None = None, *, overrides: Mapping[str, Any] | None = None,
               environ: Mapping[str, str] | None = None, upgrade_schema: bool | None = None) -> Flask:
    """Build the application.

    ``upgrade_schema``: apply the schema scripts at start (default: only for SQLite, the embedded
    database; server databases are upgraded by ``python -m app initdb`` and only checked here).
    """
    from app import docs, health
    from app.anonymize import deidentifier_from_settings
    from app.config import load_settings
    from app.error_handlers import register_error_handlers
    from app.index.database import create_index_engine, dialect_name, database_url
    from app.index.schema import apply_schema, check_schema
    from app.runtime import Services
    from app.storage import open_storage
    from app.qido.routes import blp as qido_blueprint
    from app.stow.routes import blp as stow_blueprint
    from app.wado_rs.routes import blp as wado_rs_blueprint
    from app.wado_uri.routes import blp as wado_uri_blueprint

    settings = load_settings(config_path if config_path is not None else default_config_path(),
                             environ=environ, overrides=overrides)
    logging.getLogger("app").setLevel(settings.log_level.upper())
    deidentifier = deidentifier_from_settings(settings)    # a wrong option name stops the start
    if settings.enable_anonymizer:
        deidentifier.resolve_secret()                         # App_Data/anonymizer.key made or read now

    engine = create_index_engine(settings)
    if upgrade_schema is None:
        upgrade_schema = dialect_name(database_url(settings)) == "sqlite"
    if upgrade_schema:
        apply_schema(engine)
    check_schema(engine)
    storage = open_storage(settings)
    temp_dir = settings.resolve_path(settings.temp_directory)
    temp_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__)
    app.config.update(
        API_TITLE="DICOMcloud for Python",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="swagger",
        # Served by this app from the swagger-ui-bundle package: hospital networks have no internet.
        OPENAPI_SWAGGER_UI_URL="swagger-assets/",
        MAX_CONTENT_LENGTH=None,
    )
    app.extensions["dicomcloud"] = Services(settings=settings, engine=engine, storage=storage,
                                            temp_dir=temp_dir, deidentifier=deidentifier)
    api = Api(app, spec_kwargs={"info": {"description": "DICOMweb services of DICOM PS3.18 under /api."}})
    register_error_handlers(app)     # after Api(), which installs handlers of its own
    api.register_blueprint(health.blp)
    api.register_blueprint(stow_blueprint)
    api.register_blueprint(qido_blueprint)
    api.register_blueprint(wado_rs_blueprint)
    api.register_blueprint(wado_uri_blueprint)
    app.register_blueprint(docs.assets)
    return app
