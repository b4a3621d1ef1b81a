"""Liveness, readiness and metrics: what Kubernetes probes and Prometheus scrape.

``/healthz`` answers from the process alone, so a database outage does not make Kubernetes
restart healthy pods (restarts would not fix the database and would drop in-flight requests).
``/readyz`` asks the database, so a pod that cannot store webhooks leaves the Service's
endpoints and the helpdesk's retries go to a replica that can.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from connector import metrics
from connector.pipeline.store import JobStore
from webhooks.responses import current_service, current_worker

bp = Blueprint("health", __name__)

UNREACHABLE = "database unreachable"


def readiness(store: JobStore) -> tuple[bool, dict[str, str]]:
    """Whether the edge can store webhooks, and each check's verdict.

    Mappings are validated when the service is built (a bad file stops the process before it
    listens), so a running app always has good ones; the check is reported for completeness.
    """
    ready, why = store.ready()
    if ready:
        return True, {"database": "ok", "migrations": "ok", "mappings": "ok"}
    if why.startswith(UNREACHABLE):
        return False, {"database": why, "migrations": "unknown", "mappings": "ok"}
    return False, {"database": "ok", "migrations": why, "mappings": "ok"}


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and serving requests; touches nothing else.

    Under ``bitrix-sla serve`` the process also runs the worker, so its health counts too
    (every slot and the lease keeper running; see :meth:`Worker.health`): a process whose
    worker has stopped would take webhooks and never act on them, and only a restart fixes it.
    """
    worker = current_worker()
    if worker is None:
        return jsonify({"status": "ok"})
    alive, why = worker.health()
    response = jsonify({"status": "ok" if alive else "unhealthy", "worker": why})
    response.status_code = 200 if alive else 503
    return response


@bp.get("/readyz")
def readyz() -> Response:
    """200 when the database answers with the current schema, else 503 naming the failure."""
    ready, checks = readiness(current_service().store)
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@bp.get("/metrics")
def prometheus() -> Response:
    """Counters of this process (or all gunicorn workers in multiprocess mode) and queue depth."""
    body, content_type = metrics.render(current_service().store)
    return Response(body, content_type=content_type)
