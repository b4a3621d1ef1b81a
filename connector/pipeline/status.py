"""The worker's small HTTP server: ``/healthz`` for liveness probes and ``/metrics``.

A worker serves no API, so without this a probe could only see that the process exists, not
that its job loop still turns. ``/healthz`` answers 200 while :meth:`Worker.health` is good and
503 with the reason otherwise (Kubernetes then restarts the pod; its jobs' leases expire and
another worker takes them over).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from connector import metrics
from connector.logs import AccessLog
from connector.pipeline.worker import Worker

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def status_app(worker: Worker) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app answering ``/healthz`` and ``/metrics`` for ``worker``."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            ok, detail = worker.health()
            body = json.dumps({"status": "ok" if ok else "unhealthy", "detail": detail})
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [body.encode()]
        if path == "/metrics":
            payload, content_type = metrics.render(worker.store)
            start_response("200 OK", [("Content-Type", content_type)])
            return [payload]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not_found", "detail": "try /healthz or /metrics"}']

    return app


def serve_status(worker: Worker, host: str, port: int) -> BaseWSGIServer:
    """Serve the status app on a daemon thread; returns the server (``server_port``)."""
    server = make_server(host, port, status_app(worker), threaded=True, request_handler=AccessLog)
    threading.Thread(target=server.serve_forever, name="status", daemon=True).start()
    return server
