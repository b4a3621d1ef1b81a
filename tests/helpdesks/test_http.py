"""Shared HTTP plumbing: which failures are transient, which permanent, and what they say.

Failures come from the real fake helpdesk on a real socket; ``responses`` stands in only for
answers the fake cannot give (redirects, Znuny-shaped bodies, a server echoing the token).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import requests
import responses

from connector.errors import PermanentError, TransientError
from connector.helpdesks.http import error_for, new_session, parse_retry_after, send
from connector.sandbox.fake_helpdesk import FakeHelpdesk
from tests.processes import free_port

TOKEN = "tok-9f8e7d6c5b4a"
AUTH = {"Authorization": f"Token token={TOKEN}"}
NOW = dt.datetime(2015, 10, 21, 7, 28, 0, tzinfo=dt.UTC)


@pytest.fixture
def helpdesk() -> Iterator[FakeHelpdesk]:
    with FakeHelpdesk(TOKEN) as server:
        server.create_ticket(subject="x")
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with new_session(timeout=5, headers=AUTH) as client:
        yield client


def fail(session: requests.Session, url: str, method: str = "GET", **kwargs: Any) -> Exception:
    """The error ``send`` raises for one request (the test fails if it raises none)."""
    with pytest.raises((TransientError, PermanentError)) as caught:
        send(session, method, url, source="fake demo", **kwargs)
    assert TOKEN not in str(caught.value)
    return caught.value


def test_connection_refused_is_transient(session: requests.Session) -> None:
    error = fail(session, f"http://127.0.0.1:{free_port()}/api/tickets/1?token={TOKEN}")
    assert isinstance(error, TransientError)
    assert error.retry_after is None
    assert str(error).startswith("fake demo: GET /api/tickets/1: connection failed: [Errno ")
    assert str(error).endswith("Connection refused")


def test_paused_server_is_transient(helpdesk: FakeHelpdesk, session: requests.Session) -> None:
    helpdesk.pause()
    assert isinstance(fail(session, helpdesk.base_url + "/api/tickets/1"), TransientError)


def test_read_timeout_is_transient_and_the_default_timeout_applies(
    helpdesk: FakeHelpdesk,
) -> None:
    helpdesk.faults.latency(0.5)
    with new_session(timeout=0.1, headers=AUTH) as slow:
        with pytest.raises(requests.ReadTimeout):
            slow.get(helpdesk.base_url + "/api/tickets/1")  # no timeout given: the default
        error = fail(slow, helpdesk.base_url + "/api/tickets/1")
    assert isinstance(error, TransientError)
    assert str(error) == "fake demo: GET /api/tickets/1: read timeout"


@responses.activate
def test_connect_timeout_is_transient(session: requests.Session) -> None:
    responses.get("https://helpdesk.example/api/x", body=requests.ConnectTimeout("slow"))
    error = fail(session, "https://helpdesk.example/api/x")
    assert isinstance(error, TransientError)
    assert "connect timeout" in str(error)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(500, None, None), (502, None, None), (503, 7, 7.0), (503, "0.5", 0.5), (429, 2, 2.0)],
)
def test_server_errors_and_throttling_are_transient(
    helpdesk: FakeHelpdesk,
    session: requests.Session,
    status: int,
    retry_after: float | str | None,
    expected: float | None,
) -> None:
    helpdesk.faults.fail_next(1, status=status, retry_after=retry_after)
    error = fail(session, helpdesk.base_url + "/api/tickets/1")
    assert isinstance(error, TransientError)
    assert error.retry_after == expected
    assert f"GET /api/tickets/1 -> {status} " in str(error)


def test_retry_after_as_http_date(helpdesk: FakeHelpdesk, session: requests.Session) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    helpdesk.faults.fail_next(1, retry_after=email.utils.format_datetime(later, usegmt=True))
    error = fail(session, helpdesk.base_url + "/api/tickets/1")
    assert isinstance(error, TransientError)
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_404_is_permanent_with_the_servers_words(
    helpdesk: FakeHelpdesk, session: requests.Session
) -> None:
    error = fail(session, helpdesk.base_url + "/api/tickets/99")
    assert isinstance(error, PermanentError)
    assert str(error) == "fake demo: GET /api/tickets/99 -> 404 NOT FOUND: ticket 99 not found"


def test_422_is_permanent_with_the_servers_words(
    helpdesk: FakeHelpdesk, session: requests.Session
) -> None:
    url = helpdesk.base_url + "/api/tickets/1"
    error = fail(session, url, "PATCH", json={"fields": {"colour": "red"}})
    assert isinstance(error, PermanentError)
    assert str(error) == (
        "fake demo: PATCH /api/tickets/1 -> 422 UNPROCESSABLE ENTITY: unknown field 'colour'"
    )


def test_401_is_permanent_and_does_not_reveal_the_token(helpdesk: FakeHelpdesk) -> None:
    with new_session(headers={"Authorization": "Token token=expired-0123"}) as stale:
        error = fail(stale, helpdesk.base_url + "/api/tickets/1")
    assert isinstance(error, PermanentError)
    assert "401" in str(error)
    assert "authentication failed" in str(error)
    assert "expired-0123" not in str(error)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"error": "Error ID x1: Please contact", "error_human": "Title missing"}, None),
        ({"message": "quota exceeded"}, "quota exceeded"),
        ("<html><body><h1>Forbidden</h1></body></html>", None),
        ("x" * 500, "x" * 199 + "…"),
    ],
)
def test_error_text_from_json_keys_or_plain_text(
    helpdesk: FakeHelpdesk, session: requests.Session, body: dict[str, str] | str, text: str | None
) -> None:
    helpdesk.faults.fail_next(1, status=403, body=body)
    error = fail(session, helpdesk.base_url + "/api/tickets/1")
    assert isinstance(error, PermanentError)
    if text is None:
        text = body if isinstance(body, str) else "Error ID x1: Please contact; Title missing"
    expected = text
    assert str(error).endswith(f"-> 403 FORBIDDEN: {expected}")
    assert len(str(error)) < 300


@responses.activate
def test_exotic_answers() -> None:
    base = "https://helpdesk.example"
    responses.post(f"{base}/moved", status=301, headers={"Location": f"{base}/api/v2/x?k=1"})
    responses.post(
        f"{base}/znuny",
        status=400,
        json={"Error": {"ErrorCode": "X.Invalid", "ErrorMessage": "DynamicField invalid"}},
    )
    responses.get(f"{base}/echo", status=401, body=f"bad header: Token token={TOKEN}")
    responses.get(f"{base}/gone", status=504, body="")
    with new_session(headers=AUTH) as session:
        moved = fail(session, f"{base}/moved", "POST")
        znuny = fail(session, f"{base}/znuny", "POST")
        echo = fail(session, f"{base}/echo")
        gone = fail(session, f"{base}/gone")
    assert len(responses.calls) == 4  # the redirect was not followed
    assert isinstance(moved, PermanentError)
    assert str(moved) == (
        "fake demo: POST /moved -> 301 Moved Permanently: redirected to /api/v2/x; fix the base URL"
    )
    assert isinstance(znuny, PermanentError)
    assert str(znuny).endswith(": DynamicField invalid")
    assert str(echo).endswith("401 Unauthorized: bad header: ***")
    assert isinstance(gone, TransientError)
    assert str(gone) == "fake demo: GET /gone -> 504 Gateway Timeout"


@pytest.mark.parametrize("url", ["http://", "helpdesk.example/api", "ftp://helpdesk.example/x"])
def test_unsendable_requests_are_permanent(session: requests.Session, url: str) -> None:
    assert isinstance(fail(session, url), PermanentError)


def test_error_for_takes_method_and_path_from_the_request(
    helpdesk: FakeHelpdesk, session: requests.Session
) -> None:
    ok = session.get(helpdesk.base_url + "/api/tickets/1")
    missing = session.get(helpdesk.base_url + "/api/tickets/7", params={"q": "secret"})
    assert error_for(ok) is None
    error = error_for(missing)
    assert isinstance(error, PermanentError)
    assert str(error).startswith("GET /api/tickets/7 -> 404")
    assert str(error_for(missing, method="READ", path="ticket 7")).startswith("READ ticket 7 ->")


def test_new_session_verifies_tls_by_default() -> None:
    with new_session() as default, new_session(verify_tls=False) as lab:
        assert default.verify is True
        assert lab.verify is False
        assert default.timeout == 10


# -- bounded answers ---------------------------------------------------------------------------


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers a real client the ways a misconfigured URL or a stuck proxy might."""

    protocol_version = "HTTP/1.1"
    clients: ClassVar[set[int]] = set()

    def do_GET(self) -> None:
        type(self).clients.add(self.client_address[1])
        if self.path == "/declared":  # a Content-Length beyond the cap
            self._send(b"x" * 2048, chunked=False)
        elif self.path == "/chunked":  # no length, just too much
            self._send(b"x" * 8192, chunked=True)
        elif self.path in ("/gzip", "/bomb"):  # compressed: small on the wire
            plain = b'{"ok": true}' if self.path == "/gzip" else b"0" * (4 * 1024 * 1024)
            body = gzip.compress(plain)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path in ("/stall", "/cut"):  # a tenth of the answer, then nothing / closed
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            if self.path == "/stall":
                time.sleep(2)
            self.close_connection = True
        elif self.path == "/trickle":  # a byte every 50 ms, for far longer than the deadline
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
        else:
            self._send(b'{"ok": true}', chunked=False)

    def _send(self, body: bytes, *, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 512):
                piece = body[start : start + 512]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answers() -> Iterator[str]:
    _Answers.clients = set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(
    ("path", "cap"), [("/declared", 1024), ("/chunked", 1024), ("/bomb", 10**6)]
)
def test_an_answer_larger_than_the_cap_is_permanent(answers: str, path: str, cap: int) -> None:
    """A URL that serves a download instead of the API, or 4 MB of JSON compressed to 4 KB:
    refused after at most the cap (counted after decompression), not read into memory whole."""
    with new_session(timeout=5, max_response_bytes=cap) as small:
        error = fail(small, answers + path)
    assert isinstance(error, PermanentError)
    assert f"GET {path}: the answer is " in str(error)
    assert f"than the {cap} bytes read" in str(error) or f"more than the {cap} read" in str(error)


def test_an_answer_that_trickles_is_a_timeout(answers: str) -> None:
    """Each byte comes well within the read timeout, so requests alone would wait 50 s; the
    session gives up after three read timeouts, and the job retries later."""
    with new_session(timeout=0.2) as impatient:
        started = time.monotonic()
        error = fail(impatient, answers + "/trickle")
        waited = time.monotonic() - started
    assert isinstance(error, TransientError)
    assert "still arriving after 3 read timeouts" in str(error)
    assert waited < 10  # bounded by the deadline (0.6 s), not by the server's 50 s


def test_bounded_answers_are_decoded_and_keep_the_connection(answers: str) -> None:
    with new_session(timeout=5) as client:
        for path in ("/ok", "/gzip", "/ok", "/gzip", "/ok"):
            assert send(client, "GET", answers + path).json() == {"ok": True}
    assert len(_Answers.clients) == 1  # read to the end, the connection went back to the pool


@pytest.mark.parametrize(
    ("path", "reason"), [("/stall", "read timeout"), ("/cut", "connection failed")]
)
def test_an_answer_cut_short_is_transient(answers: str, path: str, reason: str) -> None:
    """Errors while the body is read are classified like any failed request (they came out
    of urllib3 unwrapped, and a worker logged them as a crash)."""
    with new_session(timeout=0.3) as client:
        error = fail(client, answers + path)
    assert isinstance(error, TransientError)
    assert f"GET {path}: {reason}" in str(error)
