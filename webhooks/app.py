"""The Flask app factory of the edge (the flaskr tutorial's shape: settings are injected).

Production builds the app from the environment (``webhooks.wsgi``); tests and the ``demo``
command inject :class:`Settings` or a ready :class:`Service`. A bad mapping or settings file
raises :class:`~connector.errors.ConfigError` out of :func:`create_app`, so gunicorn refuses to
boot instead of serving webhooks it would mis-handle.
"""

from __future__ import annotations

import gc
import json
import logging
import traceback

from flask import Flask, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from connector.pipeline.db import driver_message
from connector.pipeline.worker import Worker
from connector.service import Service
from connector.settings import Settings, load_settings
from webhooks import routes_admin, routes_health, routes_ingest
from webhooks.responses import (
    GATE_KEY,
    RETRY_AFTER_SECONDS,
    SERVICE_KEY,
    WORKER_KEY,
    problem,
    reason_for,
)
from webhooks.write_gate import WriteGate

log = logging.getLogger(__name__)


def create_app(
    service: Service | None = None,
    *,
    settings: Settings | None = None,
    worker: Worker | None = None,
) -> Flask:
    """Build the edge around ``service``, or around a service built from ``settings``.

    Args:
        service: a ready service (shared with an in-process worker, or opened without
            migrations to test readiness). Give this or ``settings``, not both.
        settings: settings to build the service from; with neither, they are loaded from the
            environment (``load_settings()``).
        worker: an in-process worker to wake after each stored webhook, so the job starts now
            instead of at the worker's next poll.

    Raises:
        ConfigError: the settings or the mappings are invalid; the process must not start.
    """
    if service is not None and settings is not None:
        raise TypeError("create_app() takes a service or settings, not both")
    if service is None:
        service = Service.from_settings(settings if settings is not None else load_settings())
    app = Flask(__name__)
    # A backstop for every route; the webhook route also reads under its own exact cap.
    app.config["MAX_CONTENT_LENGTH"] = service.settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # No route answers OPTIONS (the edge serves no browsers, so no CORS): it gets the JSON 405
    # with an Allow header, as any other method a route does not take, not Flask's empty 200.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions[SERVICE_KEY] = service
    gate = WriteGate.for_settings(service.settings)
    app.extensions[GATE_KEY] = gate
    if gate.path is not None:  # SQLite: the store takes the gate around each write transaction
        service.store.gate = gate.hold
    if worker is not None:
        app.extensions[WORKER_KEY] = worker
    app.register_blueprint(routes_ingest.bp)
    routes_ingest.add_instance_routes(app, service.receivers)
    app.register_blueprint(routes_health.bp)
    if service.settings.admin_token is not None:
        # Off, its routes do not exist: every method on /admin/... is a 404, not a 405 whose
        # Allow header would show what is there.
        app.register_blueprint(routes_admin.bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _storage_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _http_error(exc: HTTPException) -> WerkzeugResponse:
    """Werkzeug's error (its status and headers such as ``Allow``) with a JSON body."""
    status = exc.code or 500
    response = exc.get_response()
    response.set_data(
        json.dumps({"error": reason_for(status, exc.name), "detail": exc.description or exc.name})
    )
    response.mimetype = "application/json"
    return response


def _storage_error(exc: SQLAlchemyError) -> Response:
    """The database failed outside the webhook route (admin reads): 503, retry later."""
    log.error("database error on %s %s: %s", request.method, request.path, driver_message(exc))
    return problem(
        503,
        "storage_unavailable",
        "the job store is unavailable; retry later",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _unexpected_error(exc: Exception) -> Response:
    """A bug: log where it happened and answer 500, so the helpdesk retries.

    The exception's message is left out of the log: a parser's ``KeyError`` or ``ValueError``
    may quote the payload, and bodies never go to the logs. Type and frames locate the bug.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method, request.path, frames)
    return problem(500, "internal_error", "the connector failed unexpectedly; retry later")


def freeze_boot_heap() -> None:
    """Take what the process built while booting out of the cyclic collector's reach.

    A built app holds about 90 000 objects (SQLAlchemy, pydantic schemas, calendars, mappings)
    that live as long as the process; each full collection walked all of them although none
    ever becomes garbage. Frozen, they are skipped: about 10–15 % more webhooks per second
    under load (``benchmarks/bench_ingest.py``). Call it once, after the app and its service
    are built; objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()
