"""Zammad's REST API as the connector uses it: one authenticated session, errors classified.

Shared by the adapter (:mod:`.client`) and the one-time setup (:mod:`.setup`). Facts it
encodes (facts §4.1, §4.2):

* authentication: ``Authorization: Token token=<token>`` (per-user access token; 403
  ``"API token access disabled!"`` when the admin switched token access off, 401 with an
  ``X-Failure`` header when the token is wrong or expired), ``Bearer <token>`` (OAuth2) or
  basic (setting ``api_password_access``; impossible for users with two-factor auth);
* errors are ``{"error": "...", "error_human": "..."}``: 404 unknown record, 403 permission,
  401 authentication, 422 validation **and** database errors (``StatementInvalid``, which
  includes deadlocks and lock-wait timeouts on the ticket row — those are worth retrying),
  500 anything else; for a non-admin caller an unexpected error's text is replaced by
  ``"Error ID <id>: Please contact your administrator."``, the real one is in Zammad's log.
  The recommended integration user is not an admin, so a lock conflict on a write reaches it
  only in that opaque form: on a write it is retried (see :func:`is_opaque_error`);
* basic authentication is sent as UTF-8 (RFC 7617): Rails compares the decoded bytes with the
  UTF-8 password, whereas ``requests``' own basic auth encodes Latin-1 (and fails on Cyrillic);
* there is no general rate limit in Zammad itself; 429/502/503/504 come from proxies in front
  of it and are retried like every 5xx (:mod:`connector.helpdesks.http`);
* Zammad never needs a redirect for API paths: a 3xx means the base URL is wrong (http vs
  https, a missing path prefix) and is reported, not followed.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel

from connector.errors import PermanentError, TransientError
from connector.helpdesks.base import ApiCall
from connector.helpdesks.http import (
    basic_authorization,
    error_for,
    error_text,
    new_session,
    parse_body,
)
from connector.helpdesks.zammad.options import ZammadOptions

_M = TypeVar("_M", bound=BaseModel)

#: What MySQL/MariaDB and PostgreSQL say when a row lock could not be had; Zammad answers 422
#: with this text (to admins) when ``ticket.with_lock`` loses a race (facts §4.4).
_LOCK_WORDS = re.compile(
    r"deadlock|lock wait timeout|lock timeout|could not obtain lock|lock not available|"
    r"LockWaitTimeout|serializ(?:ation|able) failure",
    re.IGNORECASE,
)
#: What Zammad answers a caller without the ``admin`` permission when an error has no human
#: text (facts §4.2; ``handles_errors.rb#humanize_error``: ``"Error ID " +
#: SecureRandom.urlsafe_base64(6) + ": Please contact your administrator."``).
_OPAQUE = re.compile(r"\bError ID [\w-]+: Please contact your administrator", re.IGNORECASE)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Zammad's hint that an unrelated required attribute is empty (facts §4.4,
#: ``validation/required.rb``): every API update validates all required fields.
_REQUIRED = re.compile(r"is required but missing|required!", re.IGNORECASE)


def auth_headers(options: ZammadOptions, token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``options.api_auth``."""
    if options.api_auth == "bearer":
        return {"Authorization": f"Bearer {token}"}
    if options.api_auth == "basic":
        return {"Authorization": basic_authorization(options.api_user or "", token)}
    return {"Authorization": f"Token token={token}"}


def is_lock_error(text: str) -> bool:
    """Whether a 422's message is a database lock conflict rather than a validation error."""
    return bool(_LOCK_WORDS.search(text))


def is_opaque_error(text: str) -> bool:
    """Whether an error's text is Zammad's "Error ID …: Please contact your administrator."

    Zammad answers that to a caller without the ``admin`` permission whenever the exception has
    no human text, a lock conflict (``StatementInvalid``, 422) among them; the real message is
    only in Zammad's log, under that id.
    """
    return bool(_OPAQUE.search(text))


class ZammadApi:
    """A session for one Zammad instance; every request is classified and recorded.

    Args:
        name: the instance name, used in error messages (``zammad <name>: GET ... -> 404``).
        base_url: Zammad's address, e.g. ``https://helpdesk.example.ru`` (no ``/api/v1``).
        token: API token, OAuth2 token or password, per ``options.api_auth``; never logged.
        options: the instance's validated options.
        timeout: seconds for connect and read of each request.
        verify_tls: check the server certificate.
        session: a session to use instead of a new one (the caller then closes it).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        options: ZammadOptions,
        *,
        timeout: float = 10.0,
        verify_tls: bool = True,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.source = f"zammad {name}"
        self._owns_session = session is None
        self._session = session or new_session(timeout=timeout, verify_tls=verify_tls)
        self._session.headers.update(auth_headers(options, token))
        self._timeout = timeout
        self._verify_tls = verify_tls

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: object = None,
    ) -> tuple[requests.Response, ApiCall]:
        """Send one request to ``/api/v1/...``; return the 2xx response and its record.

        Raises:
            TransientError: connection trouble, timeouts, 408/429/5xx, 422 lock conflicts and
                a write's opaque 422 (see :func:`_refine`).
            PermanentError: other 4xx (with Zammad's ``error``/``error_human`` text) and 3xx.
        """
        kwargs: dict[str, Any] = {
            "headers": {"Accept": "application/json", "X-Request-Id": uuid.uuid4().hex},
            "timeout": self._timeout,
            "verify": self._verify_tls,
            "allow_redirects": False,
        }
        if params is not None:
            kwargs["params"] = params
        if json is not None:
            kwargs["json"] = json
        started = time.perf_counter()
        try:
            response = self._session.request(method, self.base_url + path, **kwargs)
        except requests.RequestException as exc:
            raise _classified(exc, method, path, self.source) from exc
        error = error_for(response, source=self.source)
        if error is not None:
            raise _refine(error, response)
        duration_ms = (time.perf_counter() - started) * 1000
        record = ApiCall(
            method=method, path=path, status=response.status_code, duration_ms=duration_ms
        )
        return response, record

    def get(self, path: str, model: type[_M], params: dict[str, Any] | None = None) -> _M:
        """``GET path`` parsed as ``model``."""
        response, _ = self.call("GET", path, params=params)
        return parse_body(model, response, f"GET {path}")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``GET path`` whose answer is a JSON object."""
        data = self._json(path, params)
        if not isinstance(data, dict):
            raise PermanentError(f"GET {path}: expected a JSON object, got {type(data).__name__}")
        return data

    def get_list(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """``GET path`` whose answer is a JSON array of objects (admin lists, articles)."""
        data = self._json(path, params)
        if not isinstance(data, list):
            raise PermanentError(f"GET {path}: expected a JSON array, got {type(data).__name__}")
        return [item for item in data if isinstance(item, dict)]

    def _json(self, path: str, params: dict[str, Any] | None) -> Any:
        response, _ = self.call("GET", path, params=params)
        try:
            return response.json()
        except ValueError:
            raise PermanentError(f"GET {path} -> {response.status_code}: not JSON") from None

    def close(self) -> None:
        """Release the connection pool if this object created it."""
        if self._owns_session:
            self._session.close()


def record_path(kind: str, record_id: str | int) -> str:
    """``/api/v1/<kind>/<id>`` for a numeric Zammad id; anything else is refused."""
    text = str(record_id).strip()
    if not text.isdigit() or int(text) <= 0:
        raise PermanentError(f"{text!r} is not a Zammad {kind[:-1]} id (a positive integer)")
    return f"/api/v1/{kind}/{quote(text, safe='')}"


def _classified(
    exc: requests.RequestException, method: str, path: str, source: str
) -> TransientError | PermanentError:
    error = error_for(exc, method=method, path=path, source=source)
    assert error is not None  # an exception is never a success
    return error


def _refine(
    error: TransientError | PermanentError, response: requests.Response
) -> TransientError | PermanentError:
    """Zammad-specific classification on top of the shared one.

    A 422 is a validation error (permanent) or a database error (facts §4.2, §4.4): a lock
    conflict on the ticket row is worth retrying. An admin sees the database's message; anyone
    else sees "Error ID …: Please contact your administrator.", so for a write that answer is
    retried as a likely lock conflict — if it is something else, the job's attempts run out and
    it ends dead with this message. A read takes no row lock: there it stays permanent.
    """
    if response.status_code != 422 or isinstance(error, TransientError):
        return error
    text = error_text(response)
    if is_lock_error(text):
        return TransientError(f"{error} (database lock conflict in Zammad; retrying helps)")
    method = (response.request.method if response.request is not None else None) or "GET"
    if is_opaque_error(text) and method.upper() not in _READS:
        return TransientError(
            f"{error} (Zammad hides the cause from users without the admin permission; on a "
            "write it is most often a database lock conflict, so it is retried; if it persists, "
            "look the Error ID up in Zammad's production.log)"
        )
    if _REQUIRED.search(text):
        return PermanentError(
            f"{error} (Zammad validates every attribute that is required on the edit screen "
            "on each API update: fill it on the ticket or make it optional for ticket.agent)"
        )
    return error
