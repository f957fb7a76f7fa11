"""Swagger UI assets served from the swagger-ui-bundle package, so /swagger works with no internet."""
from __future__ import annotations

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

assets = Blueprint("swagger_assets", __name__)


@assets.route("/swagger-assets/<path:filename>")
def swagger_asset(filename):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
