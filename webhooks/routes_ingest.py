"""``POST /webhooks/<kind>/<instance>``: authenticate, parse, store durably, then answer.

The answer is the durability point of the whole connector: a 2xx tells the helpdesk to forget
the event, so it is sent only after :meth:`JobStore.ingest` has committed the event row and the
ticket's coalesced job in one transaction. Anything else makes the helpdesk retry (Zammad: 4
retries over about 100 s, any non-2xx counts; Znuny: its configured retries), and a retry of an
event we did store is recognised by its delivery id and answered 2xx without a second job.

Order of checks, cheapest and least revealing first: unknown instance (404), declared body size
(413, before a byte is read), media type (415), body read under the size cap (413),
authentication over the exact bytes received (401), payload shape (422), storage (503).

Nothing here logs a body, a token or a header value: refusals are logged with the instance and
the reason only, and database errors by their driver message, never SQLAlchemy's text (which
carries the bound parameters, i.e. the body).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

from flask import Blueprint, Flask, Response, jsonify, request
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import ClientDisconnected

from connector import metrics
from connector.errors import RequestError
from connector.helpdesks.base import TOO_DEEP
from connector.pipeline.db import driver_message
from webhooks.responses import (
    RETRY_AFTER_SECONDS,
    current_service,
    current_worker,
    problem,
)

log = logging.getLogger(__name__)

bp = Blueprint("ingest", __name__)

JOB_HEADER = "X-Bitrix-SLA-Job"
CHUNK = 64 * 1024
#: Labels for refusals whose kind/instance came from an unknown URL: the path is attacker
#: controlled, so it must not become a label value (unbounded metric cardinality).
UNKNOWN = "unknown"


class HeaderView(Mapping[str, str]):
    """Werkzeug's request headers as the read-only ``Mapping`` receivers expect.

    Lookups stay case-insensitive and return the first value of a repeated header, as
    werkzeug does; nothing is copied.
    """

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def __getitem__(self, name: str) -> str:
        value = self._headers.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def _names(self) -> list[str]:
        """Each header name once, in the spelling it first arrived with."""
        names: dict[str, str] = {}
        for key, _ in self._headers.items():
            names.setdefault(key.lower(), key)
        return list(names.values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def is_json_media_type(mimetype: str) -> bool:
    """JSON or a ``+json`` type; an absent Content-Type is left for the parser to judge.

    Zammad sends ``application/json; charset=utf-8``, Znuny ``application/json; charset=UTF-8``
    unless its requester is set to ``ContentType: FORM`` or ``XML`` — a misconfiguration this
    415 names precisely instead of a vague parse error.
    """
    return not mimetype or mimetype == "application/json" or mimetype.endswith("+json")


def _refuse(
    kind: str,
    instance: str,
    status: int,
    reason: str,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    label: tuple[str, str] | None = None,
) -> Response:
    """Count, log and answer a refused webhook. ``label`` replaces ``(kind, instance)`` in the
    metric when those come from an unchecked URL (label values must stay a bounded set)."""
    metrics.labelled(metrics.EVENTS_REJECTED, *(label or (kind, instance)), reason).inc()
    log.info("refused a webhook for %s/%s: %s (%d)", kind, instance, reason, status)
    return problem(status, reason, detail, headers)


def read_body(limit: int, length: int | None) -> bytes | None:
    """The raw body, or None if it is longer than ``limit``; never holds more than limit + 1.

    With a Content-Length ``length`` (the caller has read it once and checked it against the
    limit) exactly that many bytes are read straight from the server's input stream, which
    frames the body; werkzeug's stream wrappers would cost about a fifth of the edge's own work
    per webhook. A body that ends before its declared length (the sender gave up) is a 400, as
    werkzeug makes it. A chunked body has no length; servers that de-chunk mark the input as
    terminated, and it is read here up to ``limit + 1`` bytes. Werkzeug's own cap
    (``MAX_CONTENT_LENGTH``) cannot tell a body of exactly ``limit`` bytes from a longer one it
    silently truncates.
    """
    environ = request.environ
    stream = environ["wsgi.input"]
    if length is not None:
        body = stream.read(length) if length else b""
        while len(body) < length:  # a server may hand the body over in pieces
            more = stream.read(length - len(body))
            if not more:
                raise ClientDisconnected()
            body += more
        return body
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no framing: nothing can be read safely (werkzeug does this)
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


def add_instance_routes(app: Flask, instances: Iterable[tuple[str, str]]) -> None:
    """A static route for each configured ``(kind, instance)``, beside the generic one.

    Werkzeug matches a static path before a path with variables, and pulling the two variables
    out of the URL costs about a tenth of what a bare Flask request costs (callgrind); the
    generic route is left to answer for instances that are not configured (404).
    """
    for kind, instance in instances:
        app.add_url_rule(
            f"/webhooks/{kind}/{instance}",
            endpoint="ingest.receive",
            view_func=receive,
            methods=["POST"],
            defaults={"kind": kind, "instance": instance},
        )


@bp.post("/webhooks/<kind>/<instance>")
def receive(kind: str, instance: str) -> Response:
    """Store one webhook and answer as the helpdesk expects; see the module docstring."""
    service = current_service()
    receiver = service.receivers.get((kind, instance))
    if receiver is None:
        kind, instance = kind[:64], instance[:64]
        return _refuse(
            repr(kind),
            repr(instance),
            404,
            "unknown_instance",
            f"no helpdesk instance {kind!r}/{instance!r} is configured here",
            label=(UNKNOWN, UNKNOWN),
        )
    limit = service.settings.max_body_bytes
    too_large = f"the body is larger than the limit of {limit} bytes"
    declared = request.content_length
    if declared is not None and declared > limit:
        return _refuse(kind, instance, 413, "body_too_large", too_large)
    if not is_json_media_type(request.mimetype):
        return _refuse(
            kind,
            instance,
            415,
            "unsupported_media_type",
            f"Content-Type {request.mimetype!r} is not JSON; send application/json",
        )
    body = read_body(limit, declared)
    if body is None:
        return _refuse(kind, instance, 413, "body_too_large", too_large)
    headers = HeaderView(request.headers)
    try:
        receiver.authenticate(headers, body)
        event = receiver.parse(headers, body)
    except RequestError as exc:
        return _refuse(kind, instance, exc.status, exc.reason, str(exc) or exc.reason)
    except RecursionError:  # parsed within the limit, but too deep for what reads it next
        return _refuse(kind, instance, 422, "invalid_payload", TOO_DEEP)
    except ValidationError as exc:  # the receiver parsed it, but a value is out of bounds
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        return _refuse(kind, instance, 422, "invalid_payload", problems)
    try:
        result = service.store.ingest(kind, instance, event, body)
    except (SQLAlchemyError, OSError) as exc:
        log.error("could not store a webhook for %s/%s: %s", kind, instance, driver_message(exc))
        return _refuse(
            kind,
            instance,
            503,
            "storage_unavailable",
            "the job store is unavailable; nothing was stored, retry later",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    status, payload = receiver.success
    response = jsonify(payload)
    response.status_code = status
    if result.duplicate:
        metrics.labelled(metrics.EVENTS_DUPLICATE, kind, instance).inc()
        return response
    metrics.labelled(metrics.EVENTS_ACCEPTED, kind, instance).inc()
    if result.job_id is not None:
        response.headers[JOB_HEADER] = str(result.job_id)
    worker = current_worker()
    if worker is not None:
        worker.poke()
    return response
