"""Shared helpers for the Znuny sandbox tests: a REST client, a webhook sink, a clock.

They live here rather than in a conftest so each test module imports what it uses.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: requests captured from a real Znuny 7: the repository's copy, else the shared original
FIXTURES = next(
    (
        path
        for path in (
            Path(__file__).resolve().parents[2] / "fixtures" / "znuny",
            Path("/work/shared/fixtures/znuny"),
        )
        if (path / "TicketCreate.captured.json").exists()
    ),
    Path("/work/shared/fixtures/znuny"),
)
ROOT = {"UserLogin": "root@localhost", "Password": "root"}
SLABOT = {"UserLogin": "slabot", "Password": "slabot"}
START = dt.datetime(2026, 11, 28, 4, 0, 7, tzinfo=dt.UTC)


def captured(name: str) -> Any:
    """A captured fixture from a real Znuny 7."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class Api:
    """A plain ``requests`` client of the sandbox's web service."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=5, **kwargs)

    def get_ticket(self, ticket_id: int | str, **params: Any) -> Any:
        answer = self("GET", f"/Ticket/{ticket_id}", params={**ROOT, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def patch(self, ticket_id: int | str, body: dict[str, Any], auth: dict[str, str] = ROOT) -> Any:
        answer = self("PATCH", f"/Ticket/{ticket_id}", json={**auth, **body})
        assert answer.status_code == 200, answer.text
        return answer.json()


@dataclass(frozen=True)
class Received:
    """One request the sink received."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def event(self) -> str:
        return str(self.body["Event"]["Event"])


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class Sink:
    """The connector's side of a Znuny invoker: records requests, answers as planned.

    ``answers`` are (status, body, content type) used for the first requests in turn; after
    them every request gets ``200 {}`` as the real edge answers Znuny.
    """

    def __init__(self, answers: Iterable[tuple[int, str, str]] = ()) -> None:
        self._lock = threading.Lock()
        self._answers = list(answers)
        self._received: list[Received] = []
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/znuny/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        raw = request.get_data()
        with self._lock:
            self._received.append(
                Received(
                    time.monotonic(),
                    request.method,
                    request.full_path.rstrip("?"),
                    dict(request.headers),
                    json.loads(raw) if raw else None,
                )
            )
            status, body, content_type = (
                self._answers.pop(0) if self._answers else (200, "{}", "application/json")
            )
        return Response(body, status, content_type=content_type)(environ, start_response)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def events(self) -> list[str]:
        return [r.event for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
