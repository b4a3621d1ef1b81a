"""The fake Zammad's REST front: faults, call log, authentication, routing, error bodies.

Every ``/api/v1`` request goes through what a real deployment has in front of the handler:
injected latency and faults first (a proxy or throttle answering before Rails: 502/503, or 429
with ``Retry-After`` and Rack::Attack's text body ``Retry later``), then authentication (facts
§4.1): ``Authorization: Token token=<token>`` (or ``Bearer <token>``) identifies the acting
user; missing or unknown → **401**. ``Basic base64(login:password)`` works for users given a
password (:meth:`~connector.sandbox.zammad.server.SandboxServer.set_password`); the decoded
bytes must be the UTF-8 password, as Rails compares them (``authenticates.rb``: wrong →
401 ``Invalid BasicAuth credentials``). ``From: <id|login|email>`` (or the deprecated
``X-On-Behalf-Of``) acts as another user and needs an admin, else 403. Errors are
``{"error", "error_human"}`` (§4.2); a 422 without human text is opaque for non-admins.
Unknown routes answer 404 like Rails' catch-all.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from connector.helpdesks.signatures import tokens_match
from connector.sandbox.fake_calls import CallLog
from connector.sandbox.fake_faults import Fault, Faults, retry_after_headers, serve_with_faults
from connector.sandbox.zammad.errors import ApiError, Forbidden
from connector.sandbox.zammad.state import Store
from connector.sandbox.zammad.tickets import Tickets
from connector.sandbox.zammad.triggers import Automation

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_TICKET_PATH = re.compile(r"^/api/v1/(?:tickets|ticket_articles/by_ticket)/(\d+)$")


@dataclass
class Core:
    """What request handlers work on."""

    store: Store
    tickets: Tickets
    automation: Automation


@dataclass(frozen=True)
class Call:
    """One authenticated request.

    Attributes:
        params: query parameters, overlaid by the JSON (or form) body's keys.
        body: the parsed JSON body (None without one).
        actor_id: the acting user.
    """

    params: Mapping[str, Any]
    body: object
    actor_id: int

    @property
    def expand(self) -> bool:
        """Whether ``expand=true`` was asked for."""
        return str(self.params.get("expand", "")).lower() in ("true", "1")


Handler = Callable[..., tuple[int, object]]
Routes = Iterable[tuple[str, str, Handler]]


class ZammadApi:
    """WSGI callable serving the sandbox's REST API.

    Args:
        core: tables, ticket writes, triggers.
        faults: the fault plan consulted before authentication.
        calls: the log of served requests.
        tokens: API token → user id (looked up on every request, so tests may add tokens).
        passwords: user id → password for basic authentication (also looked up every time).
        routes: (rule, method, handler) for every endpoint; a handler takes ``(core, call,
            **rule arguments)`` and returns (status, JSON body).
    """

    def __init__(
        self,
        core: Core,
        faults: Faults,
        calls: CallLog,
        tokens: Mapping[str, int],
        routes: Routes,
        passwords: Mapping[int, str] | None = None,
    ) -> None:
        self._core = core
        self._faults = faults
        self._calls = calls
        self._tokens = tokens
        self._passwords: Mapping[int, str] = passwords if passwords is not None else {}
        rules = []
        self._handlers: dict[str, Handler] = {}
        for index, (rule, method, handler) in enumerate(routes):
            rules.append(Rule(rule, methods=[method], endpoint=str(index)))
            self._handlers[str(index)] = handler
        self._map = Map(rules)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if not request.path.startswith("/api/"):
            body = {"product": "Zammad sandbox"} if request.path == "/" else {"error": "Not Found"}
            return _json(200 if request.path == "/" else 404, body)(environ, start_response)
        handle = self._calls.begin(
            request.method, request.path, _ticket_of(request), request.headers.get("X-Request-Id")
        )
        status: int | None = None
        try:
            response, dropped = serve_with_faults(
                self._faults, request, lambda: self._answer(request), _fault_response
            )
            status = None if dropped else response.status_code
            return response(environ, start_response)
        finally:
            self._calls.end(handle, status)

    def _answer(self, request: Request) -> Response:
        actor_id: int | None = None
        try:
            actor_id = self._authenticate(request)
            endpoint, args = self._map.bind_to_environ(request.environ).match()
            call = Call(*_params(request), actor_id=actor_id)
            with self._core.store.lock:
                status, body = self._handlers[endpoint](self._core, call, **args)
            return _json(status, body)
        except HTTPException as exc:
            if exc.code == 400:
                return _json(400, {"error": exc.description, "error_human": exc.description})
            message = f"No route matches [{request.method}] {request.path}"
            return _json(404, {"error": message, "error_human": message})
        except ApiError as exc:
            human = exc.human
            if human is None and (actor_id is None or not self._core.store.is_admin(actor_id)):
                # handles_errors.rb#humanize_error: only "error", no "error_human"
                opaque = f"Error ID {secrets.token_urlsafe(6)}: Please contact your administrator."
                return _json(exc.status, {"error": opaque})
            return _json(exc.status, {"error": exc.error, "error_human": human or exc.error})

    def _authenticate(self, request: Request) -> int:
        scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
        token = credential.strip()
        user_id: int | None
        if scheme.lower() == "basic":
            user_id = self._basic_user(token)
        else:
            if scheme.lower() == "token" and token.startswith("token="):
                token = token.removeprefix("token=")
            elif scheme.lower() != "bearer":
                raise ApiError(401, "Authentication required", "Authentication required")
            tokens = list(self._tokens.items())
            user_id = next((uid for known, uid in tokens if tokens_match(known, token)), None)
        store = self._core.store
        user = store.tables["User"].get(user_id) if user_id is not None else None
        if user is None or not user["active"]:
            raise ApiError(401, "Invalid token!", "Invalid token!")
        behalf = request.headers.get("From") or request.headers.get("X-On-Behalf-Of")
        if not behalf:
            return int(user["id"])
        if not store.is_admin(user["id"]):
            raise Forbidden()
        other = store.find_user(behalf)
        if other is None:
            raise ApiError(422, f"No such user '{behalf}'", f"No such user '{behalf}'")
        return int(other["id"])

    def _basic_user(self, credential: str) -> int:
        """The user whose login (or e-mail) and password the basic credentials carry."""
        invalid = ApiError(401, "Invalid BasicAuth credentials", "Invalid BasicAuth credentials")
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise invalid from None
        login, colon, password = decoded.partition(":")
        wanted = login.strip().lower()
        with self._core.store.lock:
            user = next(
                (
                    row
                    for row in self._core.store.tables["User"].values()
                    if wanted
                    and wanted in (str(row["login"]).lower(), str(row["email"] or "").lower())
                ),
                None,
            )
        expected = self._passwords.get(int(user["id"])) if user is not None else None
        if user is None or not colon or expected is None or not tokens_match(expected, password):
            raise invalid
        return int(user["id"])


def _params(request: Request) -> tuple[dict[str, Any], object]:
    params: dict[str, Any] = dict(request.args.items())
    raw = request.get_data()
    body: object = None
    if raw.strip():
        if request.mimetype == "application/x-www-form-urlencoded":
            params.update(request.form.items())
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                message = "The request body is not valid JSON"
                raise ApiError(400, message, message) from None
    if isinstance(body, dict):
        params.update(body)
    return params, body


def _ticket_of(request: Request) -> str | None:
    """The ticket a request is about: from the path, or ``o_id`` of a tag request."""
    match = _TICKET_PATH.match(request.path)
    if match:
        return match.group(1)
    if request.path.startswith("/api/v1/tags"):
        o_id = request.args.get("o_id")
        if o_id is None and request.mimetype == "application/json":
            with contextlib.suppress(ValueError):
                body = json.loads(request.get_data() or b"null")
                o_id = body.get("o_id") if isinstance(body, dict) else None
        return None if o_id is None else str(o_id)
    return None


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status, headers, content_type="application/json; charset=utf-8")


def _fault_response(fault: Fault) -> Response:
    """Zammad's front answering a status fault: Rack::Attack's text for a bare 429."""
    headers = retry_after_headers(fault)
    if isinstance(fault.body, str):
        return Response(fault.body, fault.status, headers, mimetype="text/plain")
    if fault.body is None and fault.status == 429:  # Rack::Attack's default answer
        return Response("Retry later\n", 429, headers, mimetype="text/plain")
    body = fault.body or {"error": f"injected {fault.status}", "error_human": "injected fault"}
    return _json(fault.status, body, headers)
