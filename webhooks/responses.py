"""JSON error answers and the lookup of the service an app was built with.

Helpdesks show the receiver's answer in their webhook logs (Zammad's "Recent logs", Znuny's
debugger), so every refusal is a small JSON object an admin can read there:
``{"error": <machine-readable reason>, "detail": <what to fix>}``. The body never echoes the
request body, a token or a header value.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify

from connector.pipeline.worker import Worker
from connector.service import Service
from webhooks.write_gate import WriteGate

#: ``app.extensions`` keys: the :class:`Service`, the optional in-process :class:`Worker` and
#: the :class:`WriteGate` of the edge's SQLite writes.
SERVICE_KEY = "bitrix_sla"
WORKER_KEY = "bitrix_sla.worker"
GATE_KEY = "bitrix_sla.write_gate"
#: Seconds a client should wait after a 503 (the database is down or locked).
RETRY_AFTER_SECONDS = 5

#: Reasons for the statuses the edge answers, used when no more specific reason is known.
REASONS: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_payload",
    500: "internal_error",
    503: "unavailable",
}


def problem(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error answer ``{"error": error, "detail": detail}`` with ``status``."""
    response = jsonify({"error": error, "detail": detail})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def reason_for(status: int, name: str) -> str:
    """The ``error`` value for an HTTP status: ours, else werkzeug's name in snake case."""
    return REASONS.get(status) or name.lower().replace(" ", "_").replace("-", "_")


def current_service(app: Flask | None = None) -> Service:
    """The :class:`Service` the (current) app was created with."""
    service = (app or current_app).extensions[SERVICE_KEY]
    assert isinstance(service, Service)
    return service


def current_worker(app: Flask | None = None) -> Worker | None:
    """The in-process worker to wake after an ingest, if the app was given one."""
    worker = (app or current_app).extensions.get(WORKER_KEY)
    assert worker is None or isinstance(worker, Worker)
    return worker


def current_gate(app: Flask | None = None) -> WriteGate:
    """The gate the (current) app's writes to the job store pass through."""
    gate = (app or current_app).extensions[GATE_KEY]
    assert isinstance(gate, WriteGate)
    return gate
