"""The fake helpdesk's REST API as a plain WSGI application (werkzeug routing, no Flask).

Every ``/api/`` request goes through the same steps a real deployment has: the front-end
(injected latency and faults, before authentication, as a proxy or throttle would), token
authentication (``Authorization: Token token=<token>``, like Zammad), then the handler. Each
request is logged with its ticket id so tests can count writes and detect overlapping requests.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from connector.helpdesks.signatures import tokens_match
from connector.sandbox.fake_calls import CallLog
from connector.sandbox.fake_faults import Faults, serve_with_faults
from connector.sandbox.fake_tickets import STATES, StoreError, TicketStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_PER_PAGE = 200
_TICKET_PATH = re.compile(r"^/api/tickets/([^/]+)")
_URLS = Map(
    [
        Rule("/api/tickets", methods=["GET"], endpoint="list"),
        Rule("/api/tickets", methods=["POST"], endpoint="create"),
        Rule("/api/tickets/<ticket_id>", methods=["GET"], endpoint="read"),
        Rule("/api/tickets/<ticket_id>", methods=["PATCH"], endpoint="patch"),
        Rule("/api/tickets/<ticket_id>/tags", methods=["POST"], endpoint="tags"),
    ]
)


class BadRequest(Exception):
    """The request is malformed (not JSON, a bad query parameter): answered with 400."""


class FakeApi:
    """WSGI callable serving the fake helpdesk's REST API."""

    def __init__(self, store: TicketStore, faults: Faults, calls: CallLog, api_token: str) -> None:
        self._store = store
        self._faults = faults
        self._calls = calls
        self._token = api_token

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if not request.path.startswith("/api/"):
            response = _json(200 if request.path == "/" else 404, {"service": "fake-helpdesk"})
            return response(environ, start_response)
        match = _TICKET_PATH.match(request.path)
        handle = self._calls.begin(
            request.method,
            request.path,
            match.group(1) if match else None,
            request.headers.get("X-Request-Id"),
        )
        status: int | None = None
        try:
            response, dropped = serve_with_faults(
                self._faults, request, lambda: self._answer(request)
            )
            status = None if dropped else response.status_code
            return response(environ, start_response)
        finally:
            self._calls.end(handle, status)

    def _answer(self, request: Request) -> Response:
        """Authentication, then the handler (behind the faults, like the application)."""
        if not self._authenticated(request):
            return _json(401, {"error": "authentication failed"})
        return self._route(request)

    def _authenticated(self, request: Request) -> bool:
        scheme, _, token = (request.headers.get("Authorization") or "").partition("token=")
        return scheme.strip() == "Token" and tokens_match(self._token, token)

    def _route(self, request: Request) -> Response:
        try:
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
            return getattr(self, f"_{endpoint}")(request, **args)  # type: ignore[no-any-return]
        except HTTPException as exc:
            return _json(exc.code or 500, {"error": exc.description or exc.name})
        except BadRequest as exc:
            return _json(400, {"error": str(exc)})
        except StoreError as exc:
            return _json(exc.status, {"error": str(exc)})

    def _list(self, request: Request) -> Response:
        state = request.args.get("state") or None
        if state is not None and state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        since = _parse_since(request.args.get("changed_since"))
        page = _positive_int(request.args, "page", 1)
        per_page = min(_positive_int(request.args, "per_page", 50), MAX_PER_PAGE)
        ids = self._store.list_ids(state, since)
        start = (page - 1) * per_page
        next_page = page + 1 if len(ids) > start + per_page else None
        return _json(200, {"tickets": ids[start : start + per_page], "next_page": next_page})

    def _create(self, request: Request) -> Response:
        return _json(201, self._store.create(_body(request)))

    def _read(self, request: Request, ticket_id: str) -> Response:
        return _json(200, self._store.get(ticket_id))

    def _patch(self, request: Request, ticket_id: str) -> Response:
        fields = _body(request).get("fields")
        if not isinstance(fields, dict):
            raise StoreError('body must be {"fields": {name: value|null}}')
        return _json(200, self._store.patch_fields(ticket_id, fields))

    def _tags(self, request: Request, ticket_id: str) -> Response:
        body = _body(request)
        add, remove = body.get("add") or [], body.get("remove") or []
        ticket = self._store.change_tags(ticket_id, add, remove)
        return _json(200, {"tags": ticket["tags"]})


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers, mimetype="application/json")


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _parse_since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        since = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"changed_since is not an ISO 8601 time: {value!r}") from None
    if since.tzinfo is None:
        raise BadRequest("changed_since must include a UTC offset")
    return since


def _positive_int(args: Any, name: str, default: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a positive integer") from None
    if value < 1:
        raise BadRequest(f"{name} must be a positive integer")
    return value
