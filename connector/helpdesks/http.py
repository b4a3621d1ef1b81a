"""HTTP plumbing every helpdesk adapter shares: a safe session and one error classification.

Helpdesks fail in the usual ways: the host is down or restarting (connection refused, reset),
a reverse proxy answers 502/503/504 while the application restarts, a SaaS front-end throttles
with 429 and ``Retry-After``, and the application itself answers 4xx when the request is wrong
(unknown ticket, invalid field value, revoked token). The pipeline only needs to know whether
trying again later can help, so :func:`error_for` turns every outcome into a
:class:`~connector.errors.TransientError` (retry, honouring ``Retry-After``) or a
:class:`~connector.errors.PermanentError` (record and stop), with a message an operator can act
on. Messages never contain credentials: URLs are reduced to their path and any secret header
value the request carried is masked if the server echoes it back.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from pydantic import BaseModel, ValidationError

from connector.errors import PermanentError, TransientError

DEFAULT_TIMEOUT: float = 10.0
#: 4xx statuses worth retrying (every 5xx is): the server timed out, or it throttles us
TRANSIENT_STATUSES = frozenset({408, 429})
_SECRET_HEADER = re.compile(r"auth|token|key|secret|cookie|signature|password", re.IGNORECASE)
_USERINFO = re.compile(r"//[^/@\s]+@")
_TEXT_LIMIT = 200

Outcome = requests.Response | requests.RequestException
_M = TypeVar("_M", bound=BaseModel)


#: The largest answer read from a helpdesk. A ticket with all its articles is far smaller; a
#: misconfigured URL that serves a file download is not, and is stopped here.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: A whole answer must arrive within this many read timeouts. ``requests``' read timeout bounds
#: each wait for a byte, not the answer: a proxy that trickles a byte every few seconds would
#: hold the worker's slot (whose lease the keeper goes on renewing) for ever.
BODY_DEADLINE_FACTOR = 3
_CHUNK = 64 * 1024


class ResponseTooLargeError(requests.RequestException):
    """The answer is larger than the session reads."""


class ResponseTooSlowError(requests.Timeout):
    """The answer kept arriving for longer than the session waits."""


class HelpdeskSession(requests.Session):
    """A :class:`requests.Session` with a default timeout, bounded answers and no redirects.

    ``requests`` waits forever unless told otherwise, and a worker stuck on a dead socket holds
    its job lease. Redirects are not followed because a redirected ``POST``/``PATCH`` may be
    replayed as a ``GET`` that "succeeds" without writing anything; a 3xx is reported instead so
    the operator can fix the base URL. An answer is read up to ``max_response_bytes`` and within
    :data:`BODY_DEADLINE_FACTOR` read timeouts; beyond either the request fails with
    :class:`ResponseTooLargeError` (permanent) or :class:`ResponseTooSlowError` (a timeout).
    """

    def __init__(
        self,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        kwargs.setdefault("allow_redirects", False)
        if kwargs.get("stream"):  # the caller reads the body itself
            return super().request(method, url, *args, **kwargs)
        kwargs["stream"] = True
        timeout = kwargs["timeout"]
        read = timeout[1] if isinstance(timeout, tuple) else timeout
        deadline = time.monotonic() + BODY_DEADLINE_FACTOR * float(read or DEFAULT_TIMEOUT)
        response = super().request(method, url, *args, **kwargs)
        try:
            body = self._read(response, deadline)
        except BaseException:
            response.close()  # the rest of the answer is abandoned with its connection
            raise
        # as requests itself does without stream=True: read to the end (which hands the
        # connection back to the pool), then keep the bytes for .content, .text and .json()
        response._content = body
        return response

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLargeError(
                f"the answer is {int(declared)} bytes, more than the {limit} read",
                response=response,
            )
        chunks: list[bytes] = []
        size = 0
        # read1 returns what one read of the socket gives, so the deadline is checked as
        # bytes arrive (iter_content would wait for a whole chunk, or the end)
        while chunk := _read1(response):
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(
                    f"the answer is more than the {limit} bytes read", response=response
                )
            if time.monotonic() > deadline:
                raise ResponseTooSlowError(
                    f"the answer was still arriving after {BODY_DEADLINE_FACTOR} read timeouts",
                    response=response,
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _read1(response: requests.Response) -> bytes:
    """The next bytes of the answer, with urllib3's errors turned into requests' own (as
    ``iter_content`` does), so callers classify them like any failed request."""
    try:
        return bytes(response.raw.read1(_CHUNK, decode_content=True))
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc, response=response) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc, response=response) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc, response=response) from exc
    except (urllib3.exceptions.ProtocolError, OSError) as exc:  # cut off mid-answer
        raise requests.ConnectionError(exc, response=response) from exc


def new_session(
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    verify_tls: bool = True,
    headers: Mapping[str, str] | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> HelpdeskSession:
    """A session for one helpdesk instance.

    Args:
        timeout: seconds for connect and read, or a ``(connect, read)`` pair.
        verify_tls: check the server certificate; turn off only for a lab helpdesk with a
            self-signed certificate.
        headers: sent with every request (e.g. ``Authorization``); never logged.
        max_response_bytes: the largest answer read (:data:`MAX_RESPONSE_BYTES`).
    """
    session = HelpdeskSession(timeout, max_response_bytes=max_response_bytes)
    session.verify = verify_tls
    if headers:
        session.headers.update(headers)
    return session


def send(
    session: requests.Session, method: str, url: str, *, source: str = "", **kwargs: Any
) -> requests.Response:
    """Send one request; return the 2xx response or raise what :func:`error_for` says."""
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise _error(exc, method=method, path=_path(url), source=source) from exc
    error = error_for(response, source=source)
    if error is not None:
        raise error
    return response


def error_for(
    outcome: Outcome, *, method: str | None = None, path: str | None = None, source: str = ""
) -> TransientError | PermanentError | None:
    """The project error for a ``requests`` exception or response; None for a 2xx response.

    Transient: connection errors (refused, reset, TLS handshake), timeouts, 408, 429 and
    every 5xx, with ``retry_after`` from the ``Retry-After`` header when the server sent one.
    Permanent: other 4xx, 3xx (the base URL is wrong) and requests that cannot be sent at all
    (invalid URL). The message reads ``"<source>: <METHOD> <path> -> <status> <reason>: <error
    text>"``.

    Args:
        outcome: what ``requests`` returned or raised.
        method: overrides the method taken from the prepared request.
        path: overrides the URL path taken from the prepared request.
        source: who was called, e.g. ``"zammad main"``.
    """
    if isinstance(outcome, requests.Response) and outcome.status_code < 300:
        return None
    return _error(outcome, method=method, path=path, source=source)


def parse_body(model: type[_M], response: requests.Response, what: str) -> _M:
    """The 2xx JSON body as ``model``; a body of another shape is a permanent failure.

    Retrying cannot change what the helpdesk answers, so a body that does not fit is reported
    once, naming the first bad field: ``"GET /x -> 200: unexpected response at id: ..."``.
    """
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PermanentError(
            f"{what} -> {response.status_code}: unexpected response at {where}: {first['msg']}"
        ) from None


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    A date in the past means "now" (0); anything unreadable means "no advice" (None).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    current = now if now is not None else dt.datetime.now(dt.UTC)
    return max((moment - current).total_seconds(), 0.0)


def error_text(response: requests.Response) -> str:
    """The server's own words about a failure, short enough for a log line.

    Zammad answers ``{"error": ..., "error_human": ...}``; other servers use ``message`` or
    plain text/HTML. Distinct JSON messages are joined; text is cut to 200 characters.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        found: list[str] = []
        for key in ("error", "error_human", "message", "Error"):
            text = _message_of(body.get(key))
            if text and text not in found:
                found.append(text)
        if found:
            return _shorten("; ".join(found))
    return _shorten(response.text)


def _error(
    outcome: Outcome, *, method: str | None, path: str | None, source: str
) -> TransientError | PermanentError:
    request = outcome.request
    if method is None:
        method = (request.method if request is not None else None) or "?"
    if path is None:
        url = request.url if request is not None else None
        path = _path(url) if isinstance(url, str) else "?"
    where = f"{source}: {method} {path}" if source else f"{method} {path}"
    if isinstance(outcome, requests.RequestException):
        return _exception_error(outcome, where)
    status = outcome.status_code
    text = _redact(error_text(outcome), outcome.request)
    message = f"{where} -> {status} {outcome.reason or ''}".rstrip()
    if 300 <= status < 400:
        location = _path(outcome.headers.get("Location", "")) or "?"
        return PermanentError(f"{message}: redirected to {location}; fix the base URL")
    if text:
        message = f"{message}: {text}"
    if status >= 500 or status in TRANSIENT_STATUSES:
        retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
        return TransientError(message, retry_after=retry_after)
    return PermanentError(message)


def _exception_error(exc: requests.RequestException, where: str) -> TransientError | PermanentError:
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError(f"{where}: connect timeout")
    if isinstance(exc, ResponseTooSlowError | ResponseTooLargeError):
        kind = TransientError if isinstance(exc, ResponseTooSlowError) else PermanentError
        return kind(f"{where}: {exc}")
    if isinstance(exc, requests.Timeout):
        return TransientError(f"{where}: read timeout")
    if isinstance(exc, requests.exceptions.SSLError):
        return TransientError(f"{where}: TLS error: {_root_cause(exc)}")
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"{where}: connection failed: {_root_cause(exc)}")
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader
        | requests.exceptions.TooManyRedirects,
    ):
        return PermanentError(f"{where}: request cannot be sent: {type(exc).__name__}")
    return TransientError(f"{where}: {type(exc).__name__}: {_root_cause(exc)}")


def _root_cause(exc: BaseException) -> str:
    """The innermost reason (``[Errno 111] Connection refused``), without URLs."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        candidates = (current.__cause__, getattr(current, "reason", None), *current.args[::-1])
        nested = next((c for c in candidates if isinstance(c, BaseException)), None)
        if nested is None:
            break
        current = nested
    text = str(current)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if errno:
        return errno.group(0).strip()
    cleaned = _shorten(re.sub(r"\w+://\S+", "<url>", _USERINFO.sub("//", text)))
    return cleaned or type(current).__name__


def _message_of(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        for key in ("ErrorMessage", "message", "error"):
            if isinstance(value.get(key), str):
                return str(value[key]).strip()
        return json.dumps(value, ensure_ascii=False)
    return ""


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _TEXT_LIMIT else flat[: _TEXT_LIMIT - 1] + "…"


def _path(url: str) -> str:
    """Only the path of a URL: no host credentials, no query string that might hold a key."""
    return urlsplit(url).path if url else ""


def _redact(text: str, request: requests.PreparedRequest | None) -> str:
    """Mask secret header values (and the bare token inside them) if the server echoed them."""
    if request is None or not text:
        return text
    for name, value in request.headers.items():
        if not _SECRET_HEADER.search(name) or not value:
            continue
        candidates = {value, re.split(r"[\s=]", value)[-1]}
        for secret in sorted(candidates, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
    return text


def basic_authorization(user: str, password: str) -> str:
    """``Basic base64(user:password)`` with the credentials encoded as UTF-8 (RFC 7617 §2.1).

    Not ``requests``' ``session.auth``: it encodes Latin-1, so a Cyrillic password raises
    ``UnicodeEncodeError`` on every request and ``"päss"`` is sent as bytes a server that reads
    UTF-8 (Zammad, and this connector's own webhook receivers) does not match.
    """
    credentials = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")
