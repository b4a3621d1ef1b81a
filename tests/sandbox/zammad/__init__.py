"""Helpers shared by the Zammad sandbox tests: a REST client, a webhook sink, a hand clock."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connector.helpdesks.signatures import Algorithm, check_signature
from connector.sandbox.zammad import ADMIN_TOKEN, INTEGRATION_TOKEN, ZammadSandbox

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
QUICK = (0.05, 0.05, 0.05, 0.05)
HOOK_SECRET = "hook-signing-s3cret"
LICENSES = {"partner": "Partner", "commercial": "Commercial", "enterprise": "Enterprise"}
__all__ = ["ADMIN_TOKEN", "INTEGRATION_TOKEN"]
_numbers = itertools.count(1)


class Api:
    """A plain ``requests`` client of the sandbox's REST API, as one user."""

    def __init__(self, base_url: str, token: str | None = INTEGRATION_TOKEN) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Token token={token}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=5, **kwargs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Received:
    """One request the sink got."""

    method: str
    path: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes
    authorization: str | None


def assert_signed(got: Received, secret: str = HOOK_SECRET) -> None:
    """Fail unless ``X-Hub-Signature`` is Zammad's HMAC-SHA1 of the exact body received."""
    sha1_only: tuple[Algorithm, ...] = ("sha1",)
    check_signature(secret, got.body, got.headers["X-Hub-Signature"], algorithms=sha1_only)


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class Sink:
    """A webhook receiver on a real socket; answers from ``statuses`` in turn, then 200.

    ``on_request`` runs inside the handler before answering (e.g. to change the ticket between
    two attempts); while ``gate`` is set to an unset event, answers wait for it.
    """

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.statuses = list(statuses)
        self.received: list[Received] = []
        self.on_request: Callable[[Received], None] | None = None
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        got = Received(
            request.method,
            request.path,
            dict(request.headers.items()),
            list(request.headers.items()),
            request.get_data(),
            request.headers.get("Authorization"),
        )
        with self._lock:
            self.received.append(got)
            status = self.statuses.pop(0) if self.statuses else 200
        if self.on_request is not None:
            self.on_request(got)
        if self.gate is not None:
            self.gate.wait(10)
        headers = {"Location": "https://elsewhere.example/hook"} if 300 <= status < 400 else {}
        return Response("ok", status, headers)(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def license_attribute(zammad: ZammadSandbox) -> None:
    """Create and migrate the organization select ``bitrix_license_type``."""
    options = {"options": LICENSES, "default": "", "null": True}
    zammad.add_attribute("Organization", "bitrix_license_type", "select", options)


def due_attribute(zammad: ZammadSandbox, *, past: bool = True, migrate: bool = True) -> None:
    """Create the ticket datetime ``sla_due_at`` (``past``: whether past values are allowed)."""
    option = {"future": True, "past": past, "diff": None, "null": True}
    zammad.add_attribute("Ticket", "sla_due_at", "datetime", option, migrate=migrate)


def tier_attribute(zammad: ZammadSandbox) -> None:
    """Create the ticket select ``sla_tier``."""
    option = {"options": LICENSES, "default": "", "null": True}
    zammad.add_attribute("Ticket", "sla_tier", "select", option)


def customer_ticket(
    zammad: ZammadSandbox, title: str = "Site down", *, org: str | None = None, **extra: Any
) -> int:
    """A new customer (in a new organization ``org``) and one ticket of theirs; its id."""
    number = next(_numbers)
    org_id = zammad.add_organization(org)["id"] if org else None
    customer = zammad.add_customer(
        f"customer{number}@example.org", firstname="Ana", lastname="Silva", organization=org_id
    )
    return int(zammad.create_ticket(title, customer=customer["id"], **extra)["id"])


def idle_webhook(zammad: ZammadSandbox) -> int:
    """An inactive webhook, for triggers whose firing is checked without any delivery."""
    return int(zammad.add_webhook("idle", "http://127.0.0.1:9/idle", active=False)["id"])
