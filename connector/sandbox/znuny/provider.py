"""The provider's HTTP side: ``nph-genericinterface.pl`` with the REST transport (facts §2).

* Base URL ``/znuny/nph-genericinterface.pl/Webservice/<Name>`` (``/otrs/...`` and
  ``/WebserviceID/<n>`` work too). An unknown web service name gets **no answer at all**: the
  connection is closed [live].
* Routes come from the web service's ``RouteOperationMapping`` (tried in name order, ``:Param``
  matching one path segment); a path or method no route takes is a **500 with a plain-text
  body** [live], as is a body that is not a JSON object.
* Parameters (``Transport/HTTP/REST.pm:122-260``): the JSON body (ignored for GET), the headers
  ``X-OTRS-Header-UserLogin|Password|SessionID|CustomerUserLogin``, the query string (a
  repeated key becomes a list) and the route's ``:Params``, later ones overriding earlier ones:
  URI parameters override body parameters. The facts do not say where headers rank; the
  sandbox puts them between body and query. Query and body values are decoded as UTF-8
  (``EncodeInput``); header values are passed on as the raw bytes that arrived
  (``$URIData{Password} = $ENV{HTTP_X_OTRS_HEADER_PASSWORD}``), so the password header
  reaches the auth check as bytes.
* Operation answers, errors included, are HTTP 200 JSON.

In front of all that sit the sandbox's :class:`~connector.sandbox.fake_faults.Faults` (a proxy
answering 502/503, latency, dropped connections) and the :class:`CallLog`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from connector.sandbox.fake_calls import CallLog
from connector.sandbox.fake_faults import Faults, serve_with_faults
from connector.sandbox.znuny.operations import NotModelled, Operations

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_BASE = re.compile(
    r"^/(?:znuny|otrs)/nph-genericinterface\.pl/(Webservice|WebserviceID)/([^/]+)(.*)$"
)
_HEADER_PARAMS = ("UserLogin", "Password", "SessionID", "CustomerUserLogin")
Routes = dict[str, tuple[str, tuple[str, ...], str]]


class BadRequest(Exception):
    """A transport-level failure: answered with 500 and a plain-text body."""


class Provider:
    """WSGI callable serving one web service's provider."""

    def __init__(
        self,
        name: str,
        routes: Callable[[], Routes],
        operations: Operations,
        faults: Faults,
        calls: CallLog,
        webservice_id: int = 1,
    ) -> None:
        self.name = name
        self._routes = routes
        self._operations = operations
        self._faults = faults
        self._calls = calls
        self._webservice_id = str(webservice_id)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        base = _BASE.match(request.path)
        if base is None:
            return _text(404, "Not Found")(environ, start_response)
        by, name, rest = base.groups()
        route = self._match(request.method, rest or "/")
        ticket_id = route[1].get("TicketID") if route else None
        handle = self._calls.begin(
            request.method, request.path, ticket_id, request.headers.get("X-Request-Id")
        )
        known = name == (self._webservice_id if by == "WebserviceID" else self.name)

        def answer() -> Response | None:  # unknown web service: no answer at all [live]
            return self._serve(request, route, rest or "/") if known else None

        status: int | None = None
        try:
            response, dropped = serve_with_faults(self._faults, request, answer)
            status = None if dropped else response.status_code
            return response(environ, start_response)
        finally:
            self._calls.end(handle, status)

    def _match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for operation, (route, methods, _) in sorted(self._routes().items()):
            if methods and method.upper() not in methods:
                continue
            pattern = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", re.escape(route).replace(r"\:", ":"))
            found = re.match(f"^{pattern}/?$", path)
            if found:
                return operation, found.groupdict()
        return None

    def _serve(
        self, request: Request, route: tuple[str, dict[str, str]] | None, path: str
    ) -> Response:
        if route is None:
            return _text(
                500, f"HTTP::REST Error while determine Operation for request URI '{path}'."
            )
        try:
            params = _parameters(request)
        except BadRequest as exc:
            return _text(500, str(exc))
        params.update(route[1])
        operation_type = self._routes()[route[0]][2]
        try:
            answer = self._operations.run(operation_type, params)
        except NotModelled as exc:
            return _text(500, f"Operation type {exc} is not modelled by the sandbox.")
        body = json.dumps(answer, ensure_ascii=False)
        return Response(body, 200, content_type="application/json; charset=UTF-8")


def _parameters(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.method != "GET":
        raw = request.get_data()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise BadRequest("HTTP::REST Error while decoding request content.") from None
            if not isinstance(body, dict):
                raise BadRequest("HTTP::REST Error while decoding request content.")
            params.update(body)
    for key in _HEADER_PARAMS:
        value = request.headers.get(f"X-OTRS-Header-{key}")
        if value is not None:  # WSGI hands header bytes over as Latin-1 text
            params[key] = value.encode("latin-1") if key == "Password" else value
    for key in request.args:
        values = request.args.getlist(key)
        params[key] = values[0] if len(values) == 1 else values
    return params


def _text(status: int, text: str) -> Response:
    return Response(text + "\n", status, content_type="text/plain; charset=UTF-8")
