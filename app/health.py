"""GET /health: 200 once the index database and the blob store are both reachable, 503 if not."""
from __future__ import annotations

import logging

from flask import jsonify
from flask_smorest import Blueprint

from app.index.schema import current_version
from app.runtime import current_services

log = logging.getLogger(__name__)

blp = Blueprint("health", __name__, description="Liveness and readiness")


@blp.route("/health", methods=["GET"])
@blp.doc(responses={"200": {"description": "database and storage reachable"},
                    "503": {"description": "database or storage unreachable"}})
def health():
    """Report the database and storage backends and whether each is reachable."""
    services = current_services()
    database = {"backend": services.engine.dialect.name, "ok": False}
    storage = {"backend": services.storage.name, "ok": False}
    try:
        database["schema_version"] = current_version(services.engine)
        database["ok"] = database["schema_version"] is not None
    except Exception as exc:   # any driver error means "not reachable"; the log keeps the detail
        log.warning("health: database check failed: %s", exc)
        database["error"] = type(exc).__name__
    try:
        services.storage.check()
        storage["ok"] = True
    except Exception as exc:
        log.warning("health: storage check failed: %s", exc)
        storage["error"] = type(exc).__name__
    healthy = database["ok"] and storage["ok"]
    response = jsonify({"status": "ok" if healthy else "unavailable", "database": database,
                        "storage": storage})
    response.status_code = 200 if healthy else 503
    return response
